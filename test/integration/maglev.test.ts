// The agent runs without Maglev, V8's mid-tier JIT (on by default from Node 22): its compiles
// scatter malloc'd zone memory over glibc's heap during a burst of misses, and the heap then
// stays large (src/util/v8-memory.ts). Checked through V8's own --trace-opt output, on the
// built module and in the real server process.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NODE_KEY_ENV } from '../helpers/harness.js'
import {
  MAIN,
  loopbackServerArgs,
  runModuleScript,
  runNodeToFile,
  startedCredentialsUrl,
  until,
} from '../helpers/spawn.js'

const MODULE = fileURLToPath(new URL('../../dist/util/v8-memory.js', import.meta.url))
const NODE_MAJOR = Number(process.versions.node.split('.')[0])

/** Compiles --trace-opt reports for a tier ("[compiling method ... (target MAGLEV) ..."). */
function compiles(trace: string, tier: 'MAGLEV' | 'TURBOFAN'): number {
  return trace.match(new RegExp(`\\[compiling method .*\\(target ${tier}`, 'g'))?.length ?? 0
}

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pia-maglev-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('compileWithoutMaglev', () => {
  const script = (off: boolean): string => `
    import { compileWithoutMaglev } from ${JSON.stringify(MODULE)}
    ${off ? 'compileWithoutMaglev()' : ''}
    function f(o) { return o.a + o.b * 2 }
    let s = 0
    for (let i = 0; i < 3e6; i++) s += f({ a: i, b: 1 })
    console.log(s)
  `

  it('keeps V8 from compiling with Maglev; hot code still reaches TurboFan', async () => {
    const [on, off] = await Promise.all([
      runModuleScript(script(false), { nodeArgs: ['--trace-opt'] }),
      runModuleScript(script(true), { nodeArgs: ['--trace-opt'] }),
    ])
    // The control: Node 22+ compiles this loop with Maglev first; Node 20's V8 has it off.
    if (NODE_MAJOR >= 22) expect(compiles(on, 'MAGLEV'), on).toBeGreaterThan(0)
    else expect(compiles(on, 'MAGLEV')).toBe(0)
    expect(compiles(off, 'MAGLEV'), off).toBe(0)
    expect(compiles(off, 'TURBOFAN'), off).toBeGreaterThan(0)
  })
})

describe('the server', () => {
  it('compiles its request path without Maglev', async () => {
    let sent = 0
    const done = await runNodeToFile(
      dir,
      ['--trace-opt', MAIN, ...loopbackServerArgs('maglev-cluster', 'http://127.0.0.1:9')],
      { PATH: process.env.PATH, HOME: process.env.HOME, ...NODE_KEY_ENV },
      async (_child, stdout) => {
        await until(() => startedCredentialsUrl(stdout()) !== undefined, 'the agent to start')
        const url = startedCredentialsUrl(stdout())!
        // Requests without a token (400 MissingToken: the upstream is never called), enough
        // for the handler and Node's HTTP code to get hot: Node 24 compiles some of them with
        // Maglev within the first few hundred.
        const client = async (): Promise<void> => {
          for (let i = 0; i < 500; i++) {
            const res = await fetch(url)
            await res.arrayBuffer()
            expect(res.status).toBe(400)
            sent++
          }
        }
        await Promise.all(Array.from({ length: 8 }, client))
      },
    )
    expect(done.code).toBe(0)
    expect(sent).toBe(4000)
    expect(compiles(done.stdout, 'TURBOFAN'), done.stdout.slice(-3000)).toBeGreaterThan(0)
    // Node's module loader may get one or two functions hot before main.js runs (Node 24.11:
    // isPosixPathSeparator); the agent's own code and its request path, none. Without the flag,
    // this run had more than 200 on Node 24.11 (the handler among them).
    const maglev = [
      ...done.stdout.matchAll(/\[compiling method .*<JSFunction (\S*).*\(target MAGLEV/g),
    ]
    expect(maglev.length, maglev.map((m) => m[1]).join(' ')).toBeLessThanOrEqual(2)
  }, 60_000)
})
