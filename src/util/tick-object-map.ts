// Keeps the hidden class (V8 map) of Node's process.nextTick queue entries alive for the life of
// the process, so the hit path keeps V8's fast way of building them.
//
// Every answer makes Node call process.nextTick about ten times, and each call builds a "tick
// object" from the literal `{ [async_id_symbol]: ..., [trigger_async_id_symbol]: ..., callback,
// args }` (lib/internal/process/task_queues.js; Node 24 adds an async_context_frame key). V8
// remembers, per computed key of that literal, the one map it saw there (monomorphic feedback);
// optimised code then adds the keys with a map check and a store. That feedback holds the maps
// weakly. A full (mark-compact) GC that runs while no tick object is alive frees them; the next
// tick object gets new ones, and for a literal's computed keys V8 then marks the site megamorphic
// for good (it has no polymorphic state there: Runtime_DefineKeyedOwnPropertyInLiteral). From
// then on every nextTick goes through the runtime: 20-30 % more CPU per hit on this machine
// (bench/README.md, Results, "The nextTick slow mode").
//
// A bare node:http server seldom runs a full GC. The agent does: after its first upstream calls,
// and when V8's memory reducer runs at idle. In the bench, 3 agents out of 8 were in that state
// within a second of start-up, and every one of them after a few idle full GCs.
//
// One tick object kept alive keeps its map and the maps it was built from (a map holds its parent
// strongly), so the feedback never goes stale. This catches one tick object with an async_hooks
// init hook that is on for exactly one process.nextTick call. executionAsyncResource() would also
// give one, but it switches Node to routing every native callback through its JS trampoline for
// good, a cost on every request.

import { createHook } from 'node:async_hooks'

let pinned: object | undefined

/**
 * Catch one process.nextTick queue entry and keep it for the life of the process. Call it early,
 * before the process has run a full GC; later calls do nothing. Returns whether an entry is held.
 */
export function pinTickObjectMap(): boolean {
  if (pinned !== undefined) return true
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && pinned === undefined) pinned = resource
    },
  })
  hook.enable()
  try {
    process.nextTick(noop)
  } finally {
    hook.disable()
  }
  return pinned !== undefined
}

function noop(): void {}

/** The entry pinTickObjectMap() holds, for tests. */
export function pinnedTickObject(): object | undefined {
  return pinned
}
