// The neighbours of the neighbours benchmark, in their own process: two pods that ask for their
// credentials every `intervalMs` while another pod floods the agent. One opens a new connection
// per request (as an SDK's credential provider does: a new client per fetch), one keeps a single
// keep-alive connection. Each from its own loopback source address.
// Usage: node bench/lib/neighbour-client.js SPEC.json ; prints one JSON line:
// { fresh: { n, p50Ms, p99Ms, maxMs, errors }, keepAlive: { ... } }
// SPEC: { port, hostHeader, token, durationS, delayMs, intervalMs, freshAddress, keepAliveAddress }

import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { performance } from 'node:perf_hooks'

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function once(agent, localAddress) {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const req = request(
      {
        host: '127.0.0.1',
        port: spec.port,
        path: '/v1/credentials',
        localAddress,
        agent,
        headers: { host: spec.hostHeader, authorization: spec.token },
        timeout: 30_000,
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode === 200 ? performance.now() - t0 : -1))
      },
    )
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(-1))
    req.end()
  })
}

function summary(samples) {
  const ok = samples.filter((x) => x >= 0).sort((a, b) => a - b)
  const at = (p) => ok[Math.min(ok.length - 1, Math.max(0, Math.ceil(p * ok.length) - 1))]
  return {
    n: ok.length,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: ok[ok.length - 1],
    errors: samples.length - ok.length,
  }
}

async function probe(agent, localAddress, endAt) {
  const samples = []
  while (performance.now() < endAt) {
    samples.push(await once(agent, localAddress))
    await sleep(spec.intervalMs)
  }
  return summary(samples)
}

await sleep(spec.delayMs)
const endAt = performance.now() + spec.durationS * 1000
const keepAlive = new Agent({ keepAlive: true, maxSockets: 1, localAddress: spec.keepAliveAddress })
const [fresh, kept] = await Promise.all([
  probe(false, spec.freshAddress, endAt),
  probe(keepAlive, spec.keepAliveAddress, endAt),
])
keepAlive.destroy()
console.log(JSON.stringify({ fresh, keepAlive: kept }))
