// Warm pods polling the agent, in their own process (bench/mixed.js). Usage:
//   node bench/lib/mixed-client.js SPEC.json ; stops on a line "stop" on stdin (or after
//   maxDurationMs), then prints one JSON line.
//
// SPEC: { port, hostHeader, pods: [{ token, localAddress }], meanIntervalMs (1000),
//         startAtEpochMs, maxDurationMs, timeoutMs (5000) }
//
// Each pod asks for credentials on average every meanIntervalMs: exponential gaps (a Poisson
// process per pod, 250 pods at 1 s = 250 requests/s in all), the next gap starting when the
// previous answer arrived, as an application that keeps building SDK clients would. Each request
// is its own connection, as with the SDK's fromHttp: it builds a NodeHttpHandler per resolution,
// sends `Connection: keep-alive` and destroys its agent, hence the socket, after the answer. The
// latency of a request runs from connect() to the last byte of the answer (what the application
// waits), measured with performance.now(). Start times are reported on the clock every bench
// process shares (performance.timeOrigin + performance.now()), so that the parent can line them
// up with the herd, which runs in another process.

import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { readAnswer } from './read-answer.js'

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const meanMs = spec.meanIntervalMs ?? 1000
const timeoutMs = spec.timeoutMs ?? 5000
const maxDurationMs = spec.maxDurationMs ?? 60_000
const epoch = () => performance.timeOrigin + performance.now()

/** Samples: start (epoch ms), latency ms, status (0: no answer), one flat array of triples. */
const samples = []
const reasons = {}
let stopping = false
let onStop
const stopped = new Promise((resolve) => (onStop = resolve))
function stop() {
  stopping = true
  onStop()
}

function requestBytes(token) {
  return Buffer.from(
    `GET /v1/credentials HTTP/1.1\r\nAuthorization: ${token}\r\nHost: ${spec.hostHeader}\r\n` +
      'Connection: keep-alive\r\n\r\n',
  )
}

/** One request on its own connection; resolves when answered (or failed). */
function ask(pod) {
  return new Promise((resolve) => {
    const startEpoch = epoch()
    const t0 = performance.now()
    let settled = false
    const socket = connect({
      host: '127.0.0.1',
      port: spec.port,
      localAddress: pod.localAddress,
      noDelay: true,
    })
    const finish = (st, reason) => {
      if (settled) return
      settled = true
      const ms = performance.now() - t0
      clearTimeout(timer)
      socket.destroy()
      samples.push(startEpoch, ms, st)
      if (reason) reasons[reason] = (reasons[reason] ?? 0) + 1
      resolve()
    }
    const timer = setTimeout(() => finish(0, 'timeout'), timeoutMs)
    socket.once('connect', () => socket.write(pod.bytes))
    readAnswer(socket, finish)
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const gap = () => -Math.log(1 - Math.random()) * meanMs

async function podLoop(pod) {
  for (;;) {
    await Promise.race([sleep(gap()), stopped])
    if (stopping) return
    await ask(pod)
  }
}

const pods = spec.pods.map((p) => ({ localAddress: p.localAddress, bytes: requestBytes(p.token) }))
const startWait = (spec.startAtEpochMs ?? 0) - epoch()
if (startWait > 0) await sleep(startWait)
const loopDelay = monitorEventLoopDelay({ resolution: 10 })
loopDelay.enable()
const startEpochMs = epoch()
const stopTimer = setTimeout(stop, maxDurationMs)
let input = ''
process.stdin.on('data', (c) => {
  input += c
  if (/^stop$/m.test(input)) stop()
})
process.stdin.on('end', stop)
await Promise.all(pods.map(podLoop))
clearTimeout(stopTimer)
loopDelay.disable()
process.stdout.write(
  JSON.stringify({
    startEpochMs,
    endEpochMs: epoch(),
    requests: samples.length / 3,
    reasons,
    // The client's own event-loop delay (ms): how much of the latency the client itself adds.
    // The histogram records whole timer intervals: the 10 ms resolution is taken off.
    clientLoopDelayP99Ms: Math.max(0, loopDelay.percentile(99) / 1e6 - 10),
    clientLoopDelayMaxMs: Math.max(0, loopDelay.max / 1e6 - 10),
    samples: samples.map((v, i) => (i % 3 === 2 ? v : Math.round(v * 1000) / 1000)),
  }) + '\n',
)
process.exit(0)
