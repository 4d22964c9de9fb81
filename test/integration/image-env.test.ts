// The container image's environment (the Dockerfile's last-stage ENV, which the benchmarks also
// give the agent): glibc reads its malloc settings as meant, and they do what the Dockerfile says,
// in fresh node processes, each against a control with glibc's defaults.

import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { imageEnv, parseImageEnv } from '../../bench/lib/image-env.js'
import { runModuleScript } from '../helpers/spawn.js'

const run = promisify(execFile)
const env = imageEnv()

/** This process's environment without any malloc setting: glibc's defaults. */
function defaultsEnv(): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(MALLOC_|GLIBC_TUNABLES$)/.test(k)) out[k] = v
  }
  return out
}
const withImage = (): NodeJS.ProcessEnv => ({ ...defaultsEnv(), ...env })

/** The dynamic loader this process runs under, when it is glibc's. */
const loader = /\s(\/\S*\/ld-linux[^/\s]*\.so\.\d+)$/m.exec(
  readFileSync('/proc/self/maps', 'utf8'),
)?.[1]

async function node(script: string, childEnv: NodeJS.ProcessEnv): Promise<unknown> {
  return JSON.parse(
    await runModuleScript(script, { nodeArgs: ['--expose-gc'], env: childEnv, timeoutMs: 60_000 }),
  )
}

describe('parseImageEnv', () => {
  it("reads the last stage's ENV, continuation lines and several pairs per instruction", () => {
    const text = [
      'FROM node:24 AS build',
      'ENV BUILD_ONLY=1',
      'FROM node:24-slim',
      '# a comment',
      'ENV A=1 \\',
      '    B="two" \\',
      "    C='3'",
      'RUN true',
      'ENV D=',
    ].join('\n')
    expect(parseImageEnv(text)).toEqual({ A: '1', B: 'two', C: '3', D: '' })
  })

  it('refuses forms it would misread', () => {
    expect(() => parseImageEnv('FROM x\nENV A 1')).toThrow(/cannot read ENV "A"/)
    expect(() => parseImageEnv('FROM x\nENV A=$HOME')).toThrow(/cannot read ENV "A=\$HOME"/)
  })
})

describe("the image's malloc settings", () => {
  it('sets one malloc arena and a 32 KiB mmap threshold', () => {
    expect(env).toMatchObject({ MALLOC_ARENA_MAX: '1', MALLOC_MMAP_THRESHOLD_: '32768' })
  })

  it.skipIf(loader === undefined)('are read by glibc as those values', async () => {
    const tunables = async (e: NodeJS.ProcessEnv): Promise<string> =>
      (await run(loader as string, ['--list-tunables'], { env: e })).stdout
    const image = await tunables(withImage())
    expect(image).toMatch(/^glibc\.malloc\.arena_max: 0x1 /m)
    expect(image).toMatch(/^glibc\.malloc\.mmap_threshold: 0x8000 /m)
    const defaults = await tunables(defaultsEnv())
    expect(defaults).toMatch(/^glibc\.malloc\.arena_max: 0x0 /m)
    expect(defaults).toMatch(/^glibc\.malloc\.mmap_threshold: 0x0 /m)
  })

  // V8 compiles hot functions and marks the heap on worker threads, which malloc. glibc gives
  // such threads arenas of their own: 64 MiB reservations, 64 MiB aligned, whose freed memory
  // no other thread reuses.
  it.skipIf(loader === undefined)('keep V8 worker threads out of arenas of their own', async () => {
    const script = `
      import { readFileSync } from 'node:fs'
      let acc = 0
      for (let f = 0; f < 300; f++) {
        const fn = new Function('x', 'let s = 0; for (let i = 0; i < x; i++) { s += (i * ' + f + ') % 7 } return s')
        for (let k = 0; k < 200; k++) acc += fn(500)
      }
      const keep = []
      for (let i = 0; i < 1e6; i++) { keep.push({ i }); if (keep.length > 1e5) keep.length = 0 }
      await new Promise((r) => setTimeout(r, 300))
      const M64 = 64n << 20n
      const maps = readFileSync('/proc/self/maps', 'utf8').trim().split('\\n').map((l) => {
        const [range, perms, , , , ...name] = l.split(/\\s+/)
        const [a, b] = range.split('-').map((x) => BigInt('0x' + x))
        return { a, b, perms, anon: name.join('') === '' }
      })
      let arenas = 0
      maps.forEach((m, i) => {
        if (!m.anon || m.perms !== 'rw-p' || m.a % M64 !== 0n) return
        const next = maps[i + 1]
        const end = next && next.anon && next.a === m.b && next.perms === '---p' ? next.b : m.b
        if (end - m.a === M64) arenas++
      })
      console.log(JSON.stringify({ arenas, acc: acc > 0 }))
    `
    const [image, defaults] = await Promise.all([
      node(script, withImage()),
      node(script, defaultsEnv()),
    ])
    expect(defaults).toMatchObject({ acc: true })
    expect((defaults as { arenas: number }).arenas).toBeGreaterThan(0)
    expect(image).toEqual({ arenas: 0, acc: true })
  })

  // Blocks of 40 KiB (an ArrayBuffer's memory comes from malloc) between small blocks that stay.
  // Under glibc's defaults they are carved out of the brk heap, where a freed block goes back to
  // the kernel only if it ends up in the heap's top (how much does varies: none on Node 20, about
  // 7 MiB of the 15.6 on Node 24), so the control checks where the blocks lie, not what returns.
  // With the image's threshold each block is a mapping of its own, unmapped when freed.
  it.skipIf(loader === undefined)('hand freed 40 KiB blocks back to the kernel', async () => {
    const script = `
      import { readFileSync } from 'node:fs'
      const anon = () => Number(/RssAnon:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024
      const brk = () => {
        const m = /^([0-9a-f]+)-([0-9a-f]+) .*\\[heap\\]$/m.exec(readFileSync('/proc/self/maps', 'utf8'))
        return m ? parseInt(m[2], 16) - parseInt(m[1], 16) : 0
      }
      const settle = async () => {
        for (let i = 0; i < 4; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)) }
      }
      const brk0 = brk()
      let big = []
      const small = []
      for (let i = 0; i < 400; i++) {
        big.push(Buffer.allocUnsafeSlow(40 * 1024).fill(1))
        small.push(Buffer.allocUnsafeSlow(200).fill(2))
      }
      const heapGrew = brk() - brk0
      await settle()
      const held = anon()
      big = []
      await settle()
      console.log(JSON.stringify({ heapGrew, returned: held - anon(), small: small.length }))
    `
    const MiB = 1024 * 1024
    const [image, defaults] = (await Promise.all([
      node(script, withImage()),
      node(script, defaultsEnv()),
    ])) as { heapGrew: number; returned: number }[]
    // 400 x 40 KiB = 15.6 MiB allocated, then freed.
    expect(defaults?.heapGrew).toBeGreaterThan(12 * MiB)
    expect(image?.heapGrew).toBeLessThan(4 * MiB)
    expect(image?.returned).toBeGreaterThan(12 * MiB)
  })
})
