// pinTickObjectMap() against real V8, in fresh node processes: full GCs while no
// process.nextTick entry is alive turn V8's feedback for the tick-object literal megamorphic
// (every nextTick then goes through the runtime); with one entry pinned it stays monomorphic.
// The feedback is read with %DebugPrint (--allow-natives-syntax), which lists each feedback slot
// of process.nextTick with its state.

import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pinnedTickObject } from '../../src/util/tick-object-map.js'
import { NODE_KEY_ENV, startHarness } from '../helpers/harness.js'
import { MAIN, loopbackServerArgs, runNodeToFile, until } from '../helpers/spawn.js'

const MODULE = fileURLToPath(new URL('../../dist/util/tick-object-map.js', import.meta.url))
const V8_FLAGS = ['--expose-gc', '--allow-natives-syntax']

/** States of the literal's computed-key feedback slots in a %DebugPrint(process.nextTick). */
function literalSlotStates(debugPrint: string): string[] {
  return [...debugPrint.matchAll(/DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((m) => m[1]!)
}

// Six full GCs, each from its own timer callback, when no tick entry is queued or running; then
// one more nextTick, so the literal runs again after them; then the feedback.
const GCS_THEN_PRINT = `
  for (let i = 0; i < 100; i++) process.nextTick(() => {})
  await new Promise((r) => setTimeout(r, 20))
  for (let i = 0; i < 6; i++) {
    gc()
    await new Promise((r) => setTimeout(r, 20))
  }
  process.nextTick(() => {})
  await new Promise((r) => setTimeout(r, 5));
  %DebugPrint(process.nextTick)
`

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pia-tick-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function runScript(pin: boolean): Promise<{ code: number | null; stdout: string }> {
  const script = `
    async function main() {
      ${
        pin
          ? `const m = await import(${JSON.stringify(MODULE)})
             const held = m.pinTickObjectMap()
             const t = m.pinnedTickObject()
             console.log('PINNED ' + JSON.stringify({ held, again: m.pinTickObjectMap(),
               same: m.pinnedTickObject() === t, keys: Object.keys(t),
               symbols: Object.getOwnPropertySymbols(t).map(String) }))`
          : ''
      }
      ${GCS_THEN_PRINT}
    }
    main()
  `
  return runNodeToFile(dir, [...V8_FLAGS, '-e', script], process.env)
}

describe('pinTickObjectMap on real V8', () => {
  it('without it, full GCs leave the nextTick literal megamorphic (what the pin prevents)', async () => {
    const { stdout } = await runScript(false)
    const states = literalSlotStates(stdout)
    // The literal has at least four keys (async id, trigger id, callback, args); if this node
    // prints no such slots, the test below could not see the problem either.
    expect(states.length, stdout.slice(0, 2000)).toBeGreaterThanOrEqual(4)
    expect(states).toContain('MEGAMORPHIC')
  })

  it('with it, the same GCs leave every key monomorphic, and it holds a real tick entry', async () => {
    const { stdout } = await runScript(true)
    const pinned = JSON.parse(/^PINNED (.*)$/m.exec(stdout)![1]!) as Record<string, unknown>
    // Node 24's entries also carry an async_context_frame symbol.
    expect(pinned).toEqual({
      held: true,
      again: true,
      same: true,
      keys: ['callback', 'args'],
      symbols: expect.arrayContaining([
        'Symbol(async_id_symbol)',
        'Symbol(trigger_async_id_symbol)',
      ]) as unknown,
    })
    const states = literalSlotStates(stdout)
    expect(states.length, stdout.slice(-2000)).toBeGreaterThanOrEqual(4)
    expect(new Set(states)).toEqual(new Set(['MONOMORPHIC']))
  })
})

describe('the agent pins it', () => {
  it('startAgent holds one tick entry from its start on', async () => {
    expect(pinnedTickObject()).toBeUndefined()
    const h = await startHarness({ startMock: false })
    try {
      const held = pinnedTickObject() as Record<string, unknown> | undefined
      expect(held).toBeDefined()
      expect(Object.keys(held!)).toEqual(['callback', 'args'])
      expect(typeof held!.callback).toBe('function')
    } finally {
      await h.close()
    }
  })

  it('server: full GCs after start-up leave the nextTick literal monomorphic', async () => {
    // Loaded with -r before dist/main.js: on SIGUSR2, the same GCs and print as above, then a
    // marker on stderr.
    const preload = join(dir, 'gc-then-print.cjs')
    await writeFile(
      preload,
      `process.on('SIGUSR2', () => {
        (async () => { ${GCS_THEN_PRINT}; process._rawDebug('TICK-DUMP-DONE') })()
      })\n`,
    )
    // The endpoint is never called: no credential request is made.
    const done = await runNodeToFile(
      dir,
      [
        ...V8_FLAGS,
        '-r',
        preload,
        MAIN,
        ...loopbackServerArgs('tick-cluster', 'http://127.0.0.1:9'),
      ],
      { PATH: process.env.PATH, HOME: process.env.HOME, ...NODE_KEY_ENV },
      async (child, stdout, stderr) => {
        await until(() => stdout().includes('"event":"started"'), 'the agent to start')
        child.kill('SIGUSR2')
        await until(() => stderr().includes('TICK-DUMP-DONE'), 'the GCs and the print')
      },
    )
    expect(done.code).toBe(0)
    const states = literalSlotStates(done.stdout)
    expect(states.length, done.stdout.slice(-3000)).toBeGreaterThanOrEqual(4)
    expect(new Set(states)).toEqual(new Set(['MONOMORPHIC']))
  }, 30_000)
})
