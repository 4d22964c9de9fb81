// Load clients that run in their own process and print one JSON line (bench/lib/sdk-pods.js,
// bench/lib/mixed-client.js), and what the agent's own metrics and log say about a run.

import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT } from './servers.js'
import { performance } from 'node:perf_hooks'
import { cpuMicros, exitOf, spawnTracked } from './procs.js'

let specCounter = 0

/**
 * Spawn `node bench/lib/<script> SPECFILE` (the spec goes through a file: hundreds of tokens do
 * not fit one argv string). Resolves { child, result } where result resolves the parsed last line
 * of stdout; the child is killed after killAfterMs. onSpawn(child) runs right after spawn.
 */
export function startJsonChild(dir, script, spec, killAfterMs) {
  const file = join(dir, `${script.replace(/\W/g, '_')}-${process.pid}-${specCounter++}.json`)
  writeFileSync(file, JSON.stringify(spec))
  const child = spawnTracked(process.execPath, [join(ROOT, 'bench', 'lib', script), file], {
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (c) => (out += c))
  child.stderr.on('data', (c) => (err += c))
  const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
  const result = exitOf(child).then(({ code, signal }) => {
    clearTimeout(timer)
    rmSync(file, { force: true })
    const last = out.trim().split('\n').pop()
    if (code !== 0 || !last) {
      throw new Error(`${script} failed (${code ?? signal}): ${(err + out).slice(-2000)}`)
    }
    return JSON.parse(last)
  })
  return { child, result }
}

/** Run a JSON child to completion; resolves its result. */
export function runJsonChild(dir, script, spec, killAfterMs) {
  return startJsonChild(dir, script, spec, killAfterMs).result
}

/**
 * Samples of one Prometheus metric as { 'label="value",...': number } (the whole label set as
 * the key; '' when it has none).
 */
export function metricSamples(text, name) {
  const out = {}
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const rest = line.slice(name.length)
    let labels = ''
    if (rest.startsWith('{')) labels = rest.slice(1, rest.indexOf('}'))
    else if (!rest.startsWith(' ')) continue
    out[labels] = Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return out
}

/** The agent's answers by status: pod_identity_http_response{code} as { code: count }. */
export async function agentResponses(agent) {
  const samples = metricSamples(await agent.metrics(), 'pod_identity_http_response')
  const out = {}
  for (const [labels, v] of Object.entries(samples)) {
    const m = /code="([^"]*)"/.exec(labels)
    if (m) out[m[1]] = (out[m[1]] ?? 0) + v
  }
  return out
}

/** after - before, per key, keeping only keys that changed. */
export function countsDelta(before, after) {
  const out = {}
  for (const k of Object.keys(after)) {
    const d = after[k] - (before[k] ?? 0)
    if (d !== 0) out[k] = d
  }
  return out
}

/**
 * Lines of the agent's log from byte offset `from` on, counted by level and by `event` for
 * warn/error/fatal lines (pino JSON lines). Returns { levels, events, size }.
 */
export function logSummary(file, from = 0) {
  const buf = readFileSync(file)
  const levels = {}
  const events = {}
  for (const line of buf.subarray(from).toString('utf8').split('\n')) {
    if (line === '') continue
    let rec
    try {
      rec = JSON.parse(line)
    } catch {
      levels['not JSON'] = (levels['not JSON'] ?? 0) + 1
      continue
    }
    const level = String(rec.level)
    levels[level] = (levels[level] ?? 0) + 1
    if (/^(warn|error|fatal|40|50|60)$/.test(level)) {
      const key = `${level} ${rec.event ?? rec.msg}`
      events[key] = (events[key] ?? 0) + 1
    }
  }
  return { levels, events, size: buf.length }
}

/**
 * Samples the CPU time of pids every intervalMs (from /proc, on the clock every bench process
 * shares: performance.timeOrigin + performance.now()). stop() returns a function
 * busy(index, fromEpochMs, toEpochMs) = share of one core that pids[index] used in that window
 * (linear between samples; /proc counts in 10 ms ticks, so short windows are coarse).
 */
export function cpuSampler(pids, intervalMs = 20) {
  const now = () => performance.timeOrigin + performance.now()
  const samples = []
  // A process that has exited keeps its last reading.
  const cpuOf = (pid, i) => {
    try {
      return cpuMicros(pid)
    } catch {
      return samples.length > 0 ? samples[samples.length - 1][i + 1] : NaN
    }
  }
  const read = () => [now(), ...pids.map(cpuOf)]
  samples.push(read())
  const timer = setInterval(() => samples.push(read()), intervalMs)
  return {
    stop() {
      clearInterval(timer)
      samples.push(read())
      const at = (i, t) => {
        let k = samples.findIndex((s) => s[0] >= t)
        if (k < 0) return samples[samples.length - 1][i + 1]
        if (k === 0) return samples[0][i + 1]
        const [a, b] = [samples[k - 1], samples[k]]
        return a[i + 1] + ((b[i + 1] - a[i + 1]) * (t - a[0])) / (b[0] - a[0])
      }
      return (i, from, to) => (at(i, to) - at(i, from)) / 1000 / (to - from)
    },
  }
}
