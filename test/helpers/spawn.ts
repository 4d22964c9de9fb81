// Run the built CLI (dist/main.js), or a module script, as a real process.

import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

export const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url))

/**
 * Run an ES module script (`node --input-type=module -e`) in a fresh node process, with nodeArgs
 * before it; resolves its stdout. env defaults to this process's environment.
 */
export async function runModuleScript(
  script: string,
  {
    nodeArgs = [],
    env,
    timeoutMs = 20_000,
  }: { nodeArgs?: string[]; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...nodeArgs, '--input-type=module', '-e', script],
    { env, timeout: timeoutMs },
  )
  return stdout
}

/**
 * `server` flags for an agent on 127.0.0.1 with every port picked by the OS (credentials, probes,
 * metrics), for cluster and EKS Auth endpoint.
 */
export function loopbackServerArgs(cluster: string, endpoint: string): string[] {
  return [
    'server',
    '-c',
    cluster,
    '-p',
    '0',
    '-b',
    '127.0.0.1',
    '--probe-port',
    '0',
    '--metrics-port',
    '0',
    '--metrics-address',
    '127.0.0.1',
    '--endpoint',
    endpoint,
  ]
}

export interface Done {
  code: number | null
  stdout: string
  stderr: string
}

/** Run the CLI to completion (killed after timeoutMs). */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 15_000,
): Promise<Done> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()))
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code) => {
      clearTimeout(t)
      resolve({ code, stdout, stderr })
    })
  })
}

export interface Running {
  child: ChildProcess
  lines: string[]
  /** Resolves with the first JSON log line matching pred. */
  waitFor(
    pred: (l: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>
  exited: Promise<Done>
}

/**
 * Start a long-running CLI command and follow its JSON log lines on stdout. `entry`: another
 * node binary and what it runs before `args` (default: this node and dist/main.js).
 */
export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  entry: { node: string; argv: string[] } = { node: process.execPath, argv: [MAIN] },
): Running {
  const child = spawn(entry.node, [...entry.argv, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  let stdout = ''
  let stderr = ''
  let buf = ''
  const waiters: Array<() => void> = []
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString()
    buf += c.toString()
    let i: number
    while ((i = buf.indexOf('\n')) !== -1) {
      lines.push(buf.slice(0, i))
      buf = buf.slice(i + 1)
    }
    for (const w of waiters.splice(0)) w()
  })
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<Done>((resolve) =>
    child.on('close', (code) => {
      for (const w of waiters.splice(0)) w()
      resolve({ code, stdout, stderr })
    }),
  )
  return {
    child,
    lines,
    exited,
    waitFor(pred, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const deadline = setTimeout(
          () => reject(new Error(`no matching log line; got:\n${lines.join('\n')}\n${stderr}`)),
          timeoutMs,
        )
        const check = (): void => {
          for (const l of lines) {
            try {
              const o = JSON.parse(l) as Record<string, unknown>
              if (pred(o)) {
                clearTimeout(deadline)
                resolve(o)
                return
              }
            } catch {
              // not JSON
            }
          }
          if (child.exitCode !== null) {
            clearTimeout(deadline)
            reject(new Error(`process exited ${child.exitCode}: ${stderr}`))
            return
          }
          waiters.push(check)
        }
        check()
      })
    },
  }
}

/**
 * The credentials URL of an agent run with loopbackServerArgs, from its "started" log line in
 * stdout; undefined until that line is there.
 */
export function startedCredentialsUrl(stdout: string): string | undefined {
  const line = stdout.split('\n').find((l) => l.includes('"event":"started"'))
  if (line === undefined) return undefined
  const { listeners } = JSON.parse(line) as { listeners: string[] }
  return `http://${listeners[0]}/v1/credentials`
}

let stdoutFiles = 0
/**
 * Run node with args, its stdout into a file in dir: V8 writes its traces and %DebugPrint with
 * C stdio, which can lose output on a non-blocking pipe. during(): what to do while it runs
 * (then SIGTERM).
 */
export async function runNodeToFile(
  dir: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  during?: (child: ChildProcess, stdout: () => string, stderr: () => string) => Promise<void>,
): Promise<{ code: number | null; stdout: string }> {
  const file = join(dir, `stdout-${process.pid}-${++stdoutFiles}`)
  const fd = openSync(file, 'w')
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', fd, 'pipe'] })
  closeSync(fd)
  let stderr = ''
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
  const stdout = (): string => readFileSync(file, 'utf8')
  if (during) {
    try {
      await during(child, stdout, () => stderr)
    } finally {
      child.kill('SIGTERM')
    }
  }
  const code = await exited
  return { code, stdout: stdout() }
}
