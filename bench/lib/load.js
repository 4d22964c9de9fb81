// Closed-loop HTTP load (wrk when installed, autocannon otherwise) with the CPU each server
// process spent during the run, read from /proc/PID/stat before and after.

import { execFileSync } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { ROOT } from './servers.js'
import { cpuMicros, exitOf, memoryOf, spawnTracked } from './procs.js'

const LUA = join(ROOT, 'bench', 'lib', 'wrk-token.lua')
const AUTOCANNON_CHILD = join(ROOT, 'bench', 'lib', 'autocannon-child.js')

let generator
/** 'wrk' when it is on PATH (BENCH_LOADGEN=autocannon forces the fallback), else 'autocannon'. */
export function loadGenerator() {
  if (generator !== undefined) return generator
  if (process.env.BENCH_LOADGEN === 'autocannon') return (generator = 'autocannon')
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' })
    generator = 'wrk'
  } catch (err) {
    // wrk --version exits 1 after printing its version; only ENOENT means it is missing.
    generator = err.code === 'ENOENT' ? 'autocannon' : 'wrk'
  }
  if (generator === 'autocannon') {
    try {
      createRequire(import.meta.url).resolve('autocannon')
    } catch {
      throw new Error('neither wrk nor autocannon is installed: apt-get install wrk, or npm ci')
    }
  }
  return generator
}

/**
 * One closed-loop run. watchPids: processes whose CPU time is measured over the run window.
 * forgedPrefix (wrk only): instead of `token`, a forged token per request (wrk-token.lua).
 * Resolves { requests, rps, p50Us, p90Us, p99Us, p999Us, maxUs, errors, non2xx,
 *            cpuUs: {pid: us}, cpuUsPerRequest: {pid: us}, rss: {pid: bytes} }.
 */
export async function runLoad({
  url,
  token,
  forgedPrefix,
  connections,
  durationS,
  watchPids = [],
}) {
  const gen = loadGenerator()
  if (forgedPrefix !== undefined && gen !== 'wrk') throw new Error('forged-token load needs wrk')
  const [command, args, env] =
    gen === 'wrk'
      ? [
          'wrk',
          ['-t1', `-c${connections}`, `-d${durationS}s`, '--timeout', '5s', '-s', LUA, url],
          { ...process.env, BENCH_TOKEN: token ?? '', BENCH_FORGED_PREFIX: forgedPrefix ?? '' },
        ]
      : [
          process.execPath,
          [AUTOCANNON_CHILD, JSON.stringify({ url, connections, duration: durationS, token })],
          process.env,
        ]
  const cpu0 = watchPids.map((pid) => cpuMicros(pid))
  const child = spawnTracked(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
  let out = ''
  child.stdout.on('data', (c) => (out += c))
  child.stderr.on('data', (c) => (out += c))
  // Sample RSS near the end of the window, while the load is still on.
  let rss = {}
  const rssTimer = setTimeout(
    () => {
      rss = Object.fromEntries(watchPids.map((pid) => [pid, memoryOf(pid).rss]))
    },
    Math.max(0, durationS * 1000 - 300),
  )
  const { code } = await exitOf(child)
  clearTimeout(rssTimer)
  const cpu1 = watchPids.map((pid) => cpuMicros(pid))
  const m = /BENCH_RESULT (\{.*\})/.exec(out)
  if (code !== 0 || !m) throw new Error(`${gen} failed (exit ${code}): ${out.slice(-2000)}`)
  const r = JSON.parse(m[1])
  const cpuUs = {}
  const cpuUsPerRequest = {}
  watchPids.forEach((pid, i) => {
    cpuUs[pid] = cpu1[i] - cpu0[i]
    cpuUsPerRequest[pid] = r.requests > 0 ? cpuUs[pid] / r.requests : NaN
  })
  return {
    generator: gen,
    connections,
    durationS,
    requests: r.requests,
    rps: r.requests / (r.durationUs / 1e6),
    p50Us: r.p50,
    p90Us: r.p90,
    p99Us: r.p99,
    p999Us: r.p999,
    maxUs: r.max,
    errors: r.connectErrors + r.readErrors + r.writeErrors + r.timeouts,
    /** Connections that could not be opened (refused: nothing reached the server). */
    connectErrors: r.connectErrors,
    /** Requests sent that got no answer: read or write errors, timeouts. */
    requestErrors: r.readErrors + r.writeErrors + r.timeouts,
    non2xx: r.statusErrors,
    cpuUs,
    cpuUsPerRequest,
    rss,
  }
}

const HERD_CLIENT = join(ROOT, 'bench', 'lib', 'herd-client.js')
let specCounter = 0

/**
 * Run bench/lib/herd-client.js (its own process) with a spec (see that file); the spec goes
 * through a file in dir since 1000 tokens do not fit one argv string. Resolves its JSON summary.
 */
export async function runHerdClient(dir, spec) {
  const file = join(dir, `herd-spec-${process.pid}-${specCounter++}.json`)
  writeFileSync(file, JSON.stringify(spec))
  try {
    const child = spawnTracked(process.execPath, [HERD_CLIENT, file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    child.stdout.on('data', (c) => (out += c))
    child.stderr.on('data', (c) => (out += c))
    const timer = setTimeout(() => child.kill('SIGKILL'), (spec.timeoutMs ?? 10_000) + 60_000)
    const { code } = await exitOf(child)
    clearTimeout(timer)
    if (code !== 0) throw new Error(`herd client failed (exit ${code}): ${out.slice(-2000)}`)
    return JSON.parse(out.trim().split('\n').pop())
  } finally {
    rmSync(file, { force: true })
  }
}

/** The n-th simulated pod's loopback source address in 127.<block>.0.0/16 (n from 0). */
export function podAddress(block, n) {
  return `127.${block}.${Math.floor(n / 250)}.${(n % 250) + 1}`
}
