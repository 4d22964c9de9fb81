// Load script of the herd and memory benchmarks, run in its own process. Simulated pods each
// connect from their own loopback source address (localAddress in 127.0.0.0/8).
// Usage: node bench/lib/herd-client.js SPEC.json ; prints one JSON line of results.
//
// SPEC: { port, hostHeader, mode: 'herd' | 'burst' | 'pool', requests: [{ token, localAddress }],
//         concurrency (pool), timeoutMs, settleMs (herd), startAtEpochMs (herd, burst),
//         retry (herd): { attempts, delayMs } }
// - herd: open every connection first (in batches, so the listen backlog never overflows), let
//   the server accept them, then write every request in one loop and time each answer from
//   that moment. Measures the agent, not TCP set-up (reported apart as connectMs).
// - burst: new pods arriving at once: one loop starts every connection, each writes its request
//   as soon as it is connected; each answer is timed from its own connect, completion from the
//   loop's start. TCP set-up is part of the herd (bench/mixed.js).
// - pool: `concurrency` workers, each connect -> request -> answer -> close, until all are done.
// retry (herd only; default none): a pod whose answer is not 200 (or that got none) asks again as
// the SDK's fromHttp does by default (4 attempts, 1000 ms apart, whatever the status or
// Retry-After): after delayMs, on a new connection from its own address, up to `attempts` in all.
// Its time then runs from the herd's first write to its last answer; `statuses` and `errors` are
// the last answers, `firstStatuses` the first ones, `answerStatuses` every answer.
// startAtEpochMs: wait until that wall-clock time (performance.timeOrigin + performance.now(),
// the clock every bench process shares) before starting, so that another process's load can be
// lined up with this one; burst's output carries startEpochMs and endEpochMs on that clock.

import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { performance } from 'node:perf_hooks'
import { readAnswer } from './read-answer.js'

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const timeoutMs = spec.timeoutMs ?? 10_000
const deadline = performance.now() + timeoutMs + 30_000

function requestBytes(token) {
  return Buffer.from(
    `GET /v1/credentials HTTP/1.1\r\nHost: ${spec.hostHeader}\r\nAuthorization: ${token}\r\n` +
      'Connection: close\r\n\r\n',
  )
}

function open(localAddress) {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: spec.port, localAddress, noDelay: true })
    s.once('connect', () => {
      s.off('error', reject)
      resolve(s)
    })
    s.once('error', reject)
  })
}

/**
 * Listen for one answer on an open socket. Returns { send, done }: send(bytes) writes the request
 * and starts its clock; done resolves { status, ms, at } (status 0 = error or timeout; `at` the
 * performance.now() of the answer).
 */
function prepare(socket) {
  let t0 = 0
  let settled = false
  let timer
  let resolveDone
  const done = new Promise((resolve) => (resolveDone = resolve))
  const finish = (st, reason) => {
    if (settled) return
    settled = true
    const at = performance.now()
    clearTimeout(timer)
    socket.destroy()
    resolveDone({ status: st, ms: at - t0, at, reason })
  }
  readAnswer(socket, finish)
  function send(bytes) {
    t0 = performance.now()
    timer = setTimeout(() => finish(0, 'timeout'), timeoutMs)
    socket.write(bytes)
  }
  return { send, done }
}

async function exchange(socket, bytes) {
  const x = prepare(socket)
  x.send(bytes)
  return x.done
}

/** { status: count } of a list of statuses. */
function countStatuses(list) {
  const out = {}
  for (const st of list) out[st] = (out[st] ?? 0) + 1
  return out
}

/**
 * A pod's first exchange (already sent at sentAt) and, while it is not a 200, its retries as
 * spec.retry says; resolves the last answer with ms from sentAt and every status seen.
 */
async function withRetries(first, r, bytes, sentAt) {
  const { attempts = 4, delayMs = 1000 } = spec.retry
  let res = await first
  const seen = [res.status]
  while (res.status !== 200 && seen.length < attempts && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, delayMs))
    try {
      res = await exchange(await open(r.localAddress), bytes)
    } catch (err) {
      res = { status: 0, at: performance.now(), reason: err.code ?? 'connect' }
    }
    seen.push(res.status)
  }
  return { ...res, ms: res.at - sentAt, seen }
}

function summarise(results, extra) {
  const statuses = {}
  const reasons = {}
  for (const r of results) {
    statuses[r.status] = (statuses[r.status] ?? 0) + 1
    if (r.reason) reasons[r.reason] = (reasons[r.reason] ?? 0) + 1
  }
  const ms = results.map((r) => r.ms).sort((a, b) => a - b)
  const at = (p) => ms[Math.min(ms.length - 1, Math.max(0, Math.ceil(p * ms.length) - 1))]
  return {
    requests: results.length,
    statuses,
    errors: results.filter((r) => r.status !== 200).length,
    reasons,
    p50Ms: at(0.5),
    p90Ms: at(0.9),
    p99Ms: at(0.99),
    maxMs: ms[ms.length - 1],
    ...extra,
  }
}

async function herd() {
  const reqs = spec.requests
  const tc = performance.now()
  const sockets = []
  const batch = spec.connectBatch ?? 100
  for (let i = 0; i < reqs.length && performance.now() < deadline; i += batch) {
    const part = reqs.slice(i, i + batch)
    sockets.push(...(await Promise.all(part.map((r) => open(r.localAddress)))))
  }
  const connectMs = performance.now() - tc
  await new Promise((resolve) => setTimeout(resolve, spec.settleMs ?? 100))
  const bytes = reqs.map((r) => requestBytes(r.token))
  const exchanges = sockets.map((s) => prepare(s))
  // Everything is set up: the loop below only writes. On loopback each write also runs the
  // kernel's receive path, so the loop's span (sendSpanMs) is reported on its own.
  const t0 = performance.now()
  for (let i = 0; i < exchanges.length; i++) exchanges[i].send(bytes[i])
  const sendSpanMs = performance.now() - t0
  const results = await Promise.all(
    exchanges.map((x, i) =>
      spec.retry === undefined ? x.done : withRetries(x.done, reqs[i], bytes[i], t0),
    ),
  )
  const answered = results.filter((r) => r.status !== 0).map((r) => r.at)
  const completionMs = Math.max(...results.map((r) => r.at)) - t0
  const firstAnswerMs = answered.length > 0 ? Math.min(...answered) - t0 : NaN
  const retries =
    spec.retry === undefined
      ? {}
      : {
          attemptsTotal: results.reduce((sum, r) => sum + r.seen.length, 0),
          retriedPods: results.filter((r) => r.seen.length > 1).length,
          firstStatuses: countStatuses(results.map((r) => r.seen[0])),
          answerStatuses: countStatuses(results.flatMap((r) => r.seen)),
        }
  return summarise(results, { connectMs, sendSpanMs, firstAnswerMs, completionMs, ...retries })
}

async function pool() {
  const reqs = spec.requests
  const results = []
  let next = 0
  const t0 = performance.now()
  async function worker() {
    while (next < reqs.length && performance.now() < deadline) {
      const r = reqs[next++]
      try {
        results.push(await exchange(await open(r.localAddress), requestBytes(r.token)))
      } catch (err) {
        results.push({ status: 0, ms: 0, reason: err.code ?? 'connect' })
      }
    }
  }
  await Promise.all(Array.from({ length: spec.concurrency ?? 16 }, worker))
  return summarise(results, { completionMs: performance.now() - t0 })
}

async function burst() {
  const reqs = spec.requests
  const bytes = reqs.map((r) => requestBytes(r.token))
  const t0 = performance.now()
  const results = await Promise.all(
    reqs.map(async (r, i) => {
      const tc = performance.now()
      let socket
      try {
        socket = await open(r.localAddress)
      } catch (err) {
        return { status: 0, ms: performance.now() - tc, at: performance.now(), reason: err.code }
      }
      const x = prepare(socket)
      x.send(bytes[i])
      const res = await x.done
      return { ...res, ms: res.at - tc }
    }),
  )
  const answered = results.filter((r) => r.status !== 0).map((r) => r.at)
  const end = Math.max(...results.map((r) => r.at))
  return summarise(results, {
    completionMs: end - t0,
    firstAnswerMs: answered.length > 0 ? Math.min(...answered) - t0 : NaN,
    startEpochMs: performance.timeOrigin + t0,
    endEpochMs: performance.timeOrigin + end,
  })
}

if (spec.startAtEpochMs !== undefined) {
  const wait = spec.startAtEpochMs - (performance.timeOrigin + performance.now())
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
}
const out =
  spec.mode === 'pool' ? await pool() : spec.mode === 'burst' ? await burst() : await herd()
process.stdout.write(JSON.stringify(out) + '\n')
