// Simulated pods using the real AWS SDK container provider, all in this one process (the throttled
// boot herd). Usage: node bench/lib/sdk-pods.js SPEC.json ; prints one JSON line of results.
//
// SPEC: { url, pods: [{ token, localAddress }], deadlineMs (60000), appRetryMs (1000) }
//
// Each pod is an application start-up: it calls fromHttp() from @aws-sdk/credential-provider-http
// with its defaults (connection timeout 1000 ms, requestTimeout 1000 ms, maxRetries 3 with 1000 ms
// between attempts: 4 attempts per call), `awsContainerCredentialsFullUri` = the agent's URL and
// `awsContainerAuthorizationToken` = the pod's token. The application model: if the provider
// throws, the application waits appRetryMs (1 s) and asks again with a new provider (the default
// chain builds a new fromHttp() on each resolution), until it holds credentials or the deadline.
// All pods start in one loop at t0; each pod's source address comes from bench/lib/pod-transport.js.

import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { podContext, transportStats } from './pod-transport.js'

const require = createRequire(import.meta.url)
const { fromHttp } = require('@aws-sdk/credential-provider-http')

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'))
const deadlineMs = spec.deadlineMs ?? 60_000
const appRetryMs = spec.appRetryMs ?? 1000
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// node-http-handler warns through console.warn when a request exceeds its 1000 ms requestTimeout
// (in this SDK version that timeout only warns unless throwOnRequestTimeout is set): count them.
const warnings = {}
console.warn = (...args) => {
  const text = args.map(String).join(' ')
  const key = /requestTimeout/.test(text) ? 'request exceeded 1000 ms requestTimeout' : text
  warnings[key.slice(0, 160)] = (warnings[key.slice(0, 160)] ?? 0) + 1
}

const results = []

async function pod(p, t0) {
  const errors = {}
  const state = { localAddress: p.localAddress, attempts: [], responses: [], calls: 0, errors }
  results.push(state)
  await podContext.run(state, async () => {
    while (performance.now() - t0 < deadlineMs) {
      state.calls++
      try {
        const creds = await fromHttp({
          awsContainerCredentialsFullUri: spec.url,
          awsContainerAuthorizationToken: p.token,
        })()
        if (creds.accessKeyId) {
          state.servedMs = performance.now() - t0
          return
        }
      } catch (err) {
        const key = String(err.message).slice(0, 120)
        errors[key] = (errors[key] ?? 0) + 1
      }
      await sleep(appRetryMs)
    }
  })
}

function rank(sorted, q) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

const t0 = performance.now()
// The deadline is checked between calls; a request the agent never answers would hold its pod
// for ever (the SDK's requestTimeout only warns), so the herd also ends 5 s past the deadline,
// with such pods counted as not served and their attempts as 'pending'.
let hardStop
await Promise.race([
  Promise.all(spec.pods.map((p) => pod(p, t0))),
  new Promise((resolve) => (hardStop = setTimeout(resolve, deadlineMs + 5000))),
])
clearTimeout(hardStop)
const wallMs = performance.now() - t0

const served = results.filter((r) => r.servedMs !== undefined)
const servedMs = served.map((r) => r.servedMs).sort((a, b) => a - b)
const attempts = {}
const appErrors = {}
const responses = { total: 0, byStatus: {}, fiveXX: 0, bad5xx: 0, bad5xxSamples: [] }
for (const r of results) {
  for (const a of r.attempts) attempts[a.outcome] = (attempts[a.outcome] ?? 0) + 1
  for (const [k, v] of Object.entries(r.errors)) appErrors[k] = (appErrors[k] ?? 0) + v
  for (const x of r.responses) {
    responses.total++
    responses.byStatus[x.status] = (responses.byStatus[x.status] ?? 0) + 1
    if (x.status >= 500) {
      responses.fiveXX++
      // The contract for an overloaded/throttled agent: 503, JSON {"Code",...}, Retry-After.
      const good =
        x.status === 503 &&
        /^application\/json/.test(x.contentType ?? '') &&
        typeof x.jsonCode === 'string' &&
        x.retryAfter !== undefined &&
        x.retryAfter !== ''
      if (!good) {
        responses.bad5xx++
        if (responses.bad5xxSamples.length < 5) responses.bad5xxSamples.push(x)
      }
    }
  }
}
const retryAfter = {}
for (const r of results) {
  for (const x of r.responses) {
    if (x.retryAfter !== undefined) retryAfter[x.retryAfter] = (retryAfter[x.retryAfter] ?? 0) + 1
  }
}
const attemptsTotal = results.reduce((s, r) => s + r.attempts.length, 0)
const out = {
  pods: results.length,
  served: served.length,
  allServedMs: served.length === results.length ? servedMs[servedMs.length - 1] : NaN,
  lastServedMs: servedMs[servedMs.length - 1] ?? NaN,
  firstServedMs: servedMs[0] ?? NaN,
  p50Ms: rank(servedMs, 0.5),
  p90Ms: rank(servedMs, 0.9),
  wallMs,
  appCalls: results.reduce((s, r) => s + r.calls, 0),
  attemptsTotal,
  attempts,
  appErrors,
  responses,
  retryAfter,
  warnings,
  transport: transportStats,
}
process.stdout.write(JSON.stringify(out) + '\n')
process.exit(0)
