// Loaded by the container image's ENTRYPOINT (`node --import=...`), never by the agent's code, its
// tests or an embedder: keeps one process.nextTick queue entry alive for the life of the process.
//
// Every answer runs process.nextTick about ten times, and Node builds each queue entry from one
// object literal with computed keys. V8 holds the hidden classes in that literal's feedback weakly:
// a full GC that runs while no entry is alive frees them, and V8 then marks the literal
// megamorphic for good, so that from then on every nextTick goes through V8's runtime, and some
// agent processes spend far more CPU per hit than the others, for their whole life (measured in
// bench/README.md, "What the image's flags buy"). One entry kept alive keeps its hidden classes.
// It uses public async_hooks API only: should Node build these entries differently one day, it
// keeps nothing useful and costs nothing.

import { createHook } from 'node:async_hooks'

/** The entry kept (module scope lives as long as the process). */
let kept

const hook = createHook({
  init(_asyncId, type, _triggerAsyncId, resource) {
    if (type === 'TickObject' && kept === undefined) kept = resource
  },
})
hook.enable()
process.nextTick(() => {})
hook.disable()

export { kept }
