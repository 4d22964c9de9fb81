// How the container image runs the agent (the Dockerfile's last-stage ENV and ENTRYPOINT node
// flags, which the benchmarks also give the agent): how they are read from the Dockerfile, that
// node starts with them, and that glibc reads the malloc settings as the values meant. What they
// buy is measured in bench/, not here.

import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import {
  imageEnv,
  imageNodeArgs,
  parseImageEnv,
  parseImageNodeArgs,
} from '../../bench/lib/image-env.js'

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

describe("the image's node flags", () => {
  it("reads the node flags of the last stage's exec-form ENTRYPOINT", () => {
    const text = [
      'FROM node:24 AS build',
      'ENTRYPOINT ["node", "--build-only", "x.js"]',
      'FROM node:24-slim',
      'ENTRYPOINT ["node", "--import=/app/image/a.mjs", "--no-maglev", "/app/dist/main.js"]',
      'CMD ["server"]',
    ].join('\n')
    expect(parseImageNodeArgs(text)).toEqual(['--import=/app/image/a.mjs', '--no-maglev'])
    expect(parseImageNodeArgs('FROM x\nCMD ["a"]')).toEqual([])
    expect(() => parseImageNodeArgs('FROM x\nENTRYPOINT ["sh", "-c", "node a.js"]')).toThrow(
      /cannot read ENTRYPOINT/,
    )
  })

  it("start node, undici preloaded as the agent's own import resolves it", async () => {
    const args = imageNodeArgs()
    expect(args).toEqual(expect.arrayContaining(['--import=undici', '--no-maglev']))
    const { stdout } = await run(
      process.execPath,
      [...args, '--input-type=module', '-e', 'console.log(typeof (await import("undici")).fetch)'],
      { cwd: new URL('../..', import.meta.url) },
    )
    expect(stdout.trim()).toBe('function')
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
})
