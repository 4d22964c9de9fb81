// 2. Same-token herd: 1000 concurrent first requests for one token, upstream latency 100 ms.
// 3. Node boot herd: 250 distinct pods at once (each its own token and source address),
//    upstream latency 50 ms. Then the same 250 pods against a mock throttling above 20 calls/s,
//    each pod now an application with the real SDK provider (bench/lib/sdk-pods.js: fromHttp's
//    own timeout and retries, the application asking again 1 s after a failure): time until
//    every pod holds credentials, answers by status (the agent's counters and a wire tap of
//    what the SDK received), upstream calls per pod served. A fresh agent for every such run.
// Each run uses fresh tokens (a first request is a cache miss); upstream calls are read from the
// mock's /_mock/stats, reset before every run. Interleaved with every run, the same herd (same
// request bytes, same source addresses) against a bare node:http server answering at once gives
// the machine's floor: what answering that many simultaneous connections costs here at all.

import { podAddress, runHerdClient } from './lib/load.js'
import { statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fetchCredentials, startAgent, startBare, startMock } from './lib/servers.js'
import { fmt, median, printTable, verdict, writeResults } from './lib/report.js'
import { cpuMicros } from './lib/procs.js'
import { agentResponses, countsDelta, logSummary, runJsonChild } from './lib/clients.js'

const SAME_TOKEN_REQUESTS = 1000
/**
 * The same-token herd is one pod (one token) with many workers: its requests come from a few
 * source addresses, so that no address holds more than DESIGN 4a's default 256 connections.
 */
const SAME_TOKEN_SOURCES = 8
const BOOT_PODS = 250

/** CPU ms the agent and the mock spent since cpu0 (includes connection set-up and settling). */
function cpuSince(cpu0, agent, mock) {
  return {
    agentCpuMs: (cpuMicros(agent.pid) - cpu0[0]) / 1000,
    mockCpuMs: (cpuMicros(mock.pid) - cpu0[1]) / 1000,
  }
}

/** A bare node:http server sending the agent's answer for token (fetched before any run). */
async function startFloor(fx, agent, token, name) {
  const first = await fetchCredentials(agent, token)
  if (first.status !== 200) throw new Error(`floor body: ${first.status} ${first.body}`)
  const file = join(fx.dir, `${name}-body.json`)
  writeFileSync(file, first.body)
  return startBare(file)
}

/** A herd spec against the agent, from a fresh mock count: { out, cpu, stats (the mock's) }. */
async function agentRun(fx, agent, mock, spec) {
  await mock.reset()
  const cpu0 = [cpuMicros(agent.pid), cpuMicros(mock.pid)]
  const out = await runHerdClient(fx.dir, {
    ...spec,
    port: agent.port,
    hostHeader: agent.hostHeader,
  })
  const cpu = cpuSince(cpu0, agent, mock)
  return { out, cpu, stats: await mock.stats() }
}

/** Medians (and extremes where a target needs them) of the runs of one herd. */
function herdSummary(results) {
  const m = (f) => median(results.map((x) => x[f]))
  const calls = results.map((x) => x.upstreamCalls)
  return {
    upstreamCalls: m('upstreamCalls'),
    upstreamCallsMin: Math.min(...calls),
    upstreamCallsMax: Math.max(...calls),
    completionMs: m('completionMs'),
    p50Ms: m('p50Ms'),
    p99Ms: m('p99Ms'),
    connectMs: m('connectMs'),
    sendSpanMs: m('sendSpanMs'),
    firstAnswerMs: m('firstAnswerMs'),
    agentCpuMs: m('agentCpuMs'),
    mockCpuMs: m('mockCpuMs'),
    errors: m('errors'),
    errorsMax: Math.max(...results.map((x) => x.errors)),
  }
}

/** The timing cells both herd tables print, from a herdSummary plus its floor. */
function timingCells(s) {
  return [
    fmt(s.completionMs, 1),
    fmt(s.floorCompletionMs, 1),
    fmt(s.firstAnswerMs, 1),
    fmt(s.sendSpanMs, 1),
    fmt(s.p50Ms, 1),
    fmt(s.p99Ms, 1),
    `${fmt(s.errors)} (max ${s.errorsMax})`,
  ]
}

/** The same herd spec against the bare server. */
function floorRun(fx, bare, spec) {
  return runHerdClient(fx.dir, { ...spec, port: bare.port, hostHeader: `127.0.0.1:${bare.port}` })
}

function statusText(statuses) {
  return Object.entries(statuses)
    .map(([k, v]) => `${k === '0' ? 'no answer' : k}: ${v}`)
    .join(', ')
}

export async function sameTokenHerd({ fx, full }) {
  const runs = full ? 7 : 3
  const tokens = await fx.mint(runs + 1, 'herd')
  const mock = await startMock(fx, { latencyMs: 100 })
  let agent
  let bare
  try {
    agent = await startAgent(fx, mock.url)
    bare = await startFloor(fx, agent, tokens[runs], 'herd')
    const results = []
    const floors = []
    for (let r = 0; r < runs; r++) {
      const spec = {
        mode: 'herd',
        timeoutMs: 10_000,
        requests: Array.from({ length: SAME_TOKEN_REQUESTS }, (_, i) => ({
          token: tokens[r],
          localAddress: podAddress(3, i % SAME_TOKEN_SOURCES),
        })),
      }
      const { out, cpu, stats } = await agentRun(fx, agent, mock, spec)
      results.push({ ...out, ...cpu, upstreamCalls: stats.requests, upstream: stats.byOutcome })
      floors.push(await floorRun(fx, bare, spec))
    }
    const summary = {
      requests: SAME_TOKEN_REQUESTS,
      ...herdSummary(results),
      floorCompletionMs: median(floors.map((x) => x.completionMs)),
    }
    printTable(
      `Same-token herd (${SAME_TOKEN_REQUESTS} concurrent first requests, one token, upstream 100 ms; median of ${runs})`,
      [
        'upstream calls',
        'all answered ms',
        'bare floor ms',
        'first answer ms',
        'send loop ms',
        'p50 ms',
        'p99 ms',
        'non-200',
        'agent CPU ms',
        'mock CPU ms',
      ],
      [
        [
          `${fmt(summary.upstreamCalls)} (max ${summary.upstreamCallsMax})`,
          ...timingCells(summary),
          fmt(summary.agentCpuMs),
          fmt(summary.mockCpuMs),
        ],
      ],
    )
    const targets = [
      {
        target: 'same-token herd: exactly 1 upstream call (every run)',
        value: summary.upstreamCallsMax,
        ok: results.every((x) => x.upstreamCalls === 1),
      },
      {
        target: 'same-token herd: all answered within 200 ms (ms)',
        value: summary.completionMs,
        ok: summary.completionMs <= 200 && summary.errorsMax === 0,
      },
    ]
    for (const t of targets) t.verdict = verdict(t.ok)
    console.log(`results: ${writeResults('herd', { runs: results, floors, summary, targets })}`)
    return targets
  } finally {
    await bare?.stop()
    await agent?.stop()
    await mock.stop()
  }
}

async function bootRuns(fx, mock, agent, bare, runs, tokens, prepare) {
  const results = []
  for (let r = 0; r < runs; r++) {
    const spec = {
      mode: 'herd',
      timeoutMs: 10_000,
      requests: Array.from({ length: BOOT_PODS }, (_, i) => ({
        token: tokens[r * BOOT_PODS + i],
        localAddress: podAddress(4, i),
      })),
    }
    await prepare()
    const { out, cpu, stats } = await agentRun(fx, agent, mock, spec)
    const floor = await floorRun(fx, bare, spec)
    results.push({
      ...out,
      ...cpu,
      upstreamCalls: stats.requests,
      upstream: stats.byOutcome,
      floorCompletionMs: floor.completionMs,
    })
  }
  return results
}

function bootSummary(results) {
  const statuses = {}
  for (const code of new Set(results.flatMap((x) => Object.keys(x.statuses)))) {
    statuses[code] = median(results.map((x) => x.statuses[code] ?? 0))
  }
  return {
    pods: BOOT_PODS,
    ...herdSummary(results),
    statuses,
    floorCompletionMs: median(results.map((x) => x.floorCompletionMs)),
  }
}

/** What the upstream's token bucket allows: the burst at once, then `rate` per second. */
const THROTTLE_RATE = 20
const THROTTLE_BURST = 20
const RATE_ALLOWED_MS = ((BOOT_PODS - THROTTLE_BURST) / THROTTLE_RATE) * 1000
const SDK_DEADLINE_MS = 60_000

/** Median per key over runs of { key: count } objects (a key missing from a run counts 0). */
function medianCounts(list) {
  const out = {}
  for (const k of new Set(list.flatMap((x) => Object.keys(x)))) {
    out[k] = median(list.map((x) => x[k] ?? 0))
  }
  return out
}

function countsText(counts) {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}: ${fmt(v)}`)
    .join(', ')
}

/**
 * One throttled boot herd: a fresh agent (a node boots: nothing cached, no upstream state), the
 * mock's bucket full, 250 pods with the real SDK provider in bench/lib/sdk-pods.js.
 */
async function throttledRun(fx, mock, tokens, block) {
  const agent = await startAgent(fx, mock.url)
  try {
    await mock.faults({ latencyMs: 50, throttleQps: 0 })
    await mock.faults({ throttleQps: THROTTLE_RATE })
    await mock.reset()
    const before = await agentResponses(agent)
    const logFrom = statSync(agent.logFile).size
    const cpu0 = [cpuMicros(agent.pid), cpuMicros(mock.pid)]
    const out = await runJsonChild(
      fx.dir,
      'sdk-pods.js',
      {
        url: agent.url,
        deadlineMs: SDK_DEADLINE_MS,
        appRetryMs: 1000,
        pods: tokens.map((token, i) => ({ token, localAddress: podAddress(block, i) })),
      },
      SDK_DEADLINE_MS + 60_000,
    )
    const cpu = cpuSince(cpu0, agent, mock)
    const stats = await mock.stats()
    const agentStatuses = countsDelta(before, await agentResponses(agent))
    // The agent's own counters see every answer (the SDK's wire tap only what pods received).
    const agentOther5xx = Object.entries(agentStatuses)
      .filter(([code]) => Number(code) >= 500 && code !== '503')
      .reduce((sum, [, v]) => sum + v, 0)
    return {
      ...out,
      ...cpu,
      agentStatuses,
      agentOther5xx,
      bad5xx: Math.max(out.responses.bad5xx, agentOther5xx),
      upstreamCalls: stats.requests,
      upstream: stats.byOutcome,
      callsPerServed: out.served > 0 ? stats.requests / out.served : NaN,
      timeRatio: out.allServedMs / RATE_ALLOWED_MS,
      agentLog: logSummary(agent.logFile, logFrom),
    }
  } finally {
    await agent.stop()
  }
}

function throttledSummary(runs) {
  const m = (f) => median(runs.map((x) => x[f]))
  return {
    pods: BOOT_PODS,
    rateAllowedMs: RATE_ALLOWED_MS,
    allServedMs: m('allServedMs'),
    allServedEveryRun: runs.every((x) => x.served === x.pods),
    servedMin: Math.min(...runs.map((x) => x.served)),
    p50Ms: m('p50Ms'),
    p90Ms: m('p90Ms'),
    firstServedMs: m('firstServedMs'),
    timeRatio: m('timeRatio'),
    upstreamCalls: m('upstreamCalls'),
    upstreamCallsMax: Math.max(...runs.map((x) => x.upstreamCalls)),
    callsPerServed: m('callsPerServed'),
    callsPerServedMax: Math.max(...runs.map((x) => x.callsPerServed)),
    upstream: medianCounts(runs.map((x) => x.upstream)),
    appCalls: m('appCalls'),
    attemptsTotal: m('attemptsTotal'),
    attempts: medianCounts(runs.map((x) => x.attempts)),
    agentStatuses: medianCounts(runs.map((x) => x.agentStatuses)),
    wireStatuses: medianCounts(runs.map((x) => x.responses.byStatus)),
    retryAfter: medianCounts(runs.map((x) => x.retryAfter)),
    fiveXX: median(runs.map((x) => x.responses.fiveXX)),
    bad5xxMax: Math.max(...runs.map((x) => x.bad5xx)),
    requestTimeoutWarnings: median(
      runs.map((x) => x.warnings['request exceeded 1000 ms requestTimeout'] ?? 0),
    ),
    addressMismatches: Math.max(...runs.map((x) => x.transport.addressMismatches)),
    agentCpuMs: m('agentCpuMs'),
    mockCpuMs: m('mockCpuMs'),
  }
}

export async function bootHerd({ fx, full }) {
  const runs = full ? 5 : 3
  const throttledRunCount = full ? 3 : Number(process.env.BENCH_BOOT_THROTTLED_RUNS ?? 1)
  const tokens = await fx.mint(runs * BOOT_PODS + 1, 'boot')
  const mock = await startMock(fx, { latencyMs: 50 })
  let agent
  let bare
  let plain
  let plainRuns
  try {
    agent = await startAgent(fx, mock.url)
    bare = await startFloor(fx, agent, tokens[tokens.length - 1], 'boot')
    plainRuns = await bootRuns(fx, mock, agent, bare, runs, tokens, async () => {})
    plain = bootSummary(plainRuns)
  } finally {
    await bare?.stop()
    await agent?.stop()
  }
  try {
    printTable(
      `Node boot herd (${BOOT_PODS} pods at once, own token and source address each, upstream 50 ms; median of ${runs})`,
      [
        'mock',
        'all served ms',
        'bare floor ms',
        'first ms',
        'send loop ms',
        'p50 ms',
        'p99 ms',
        'non-200',
        'answers by status',
        'upstream calls',
        'agent CPU ms',
        'mock CPU ms',
      ],
      [
        [
          'plain',
          ...timingCells(plain),
          statusText(plain.statuses),
          `${fmt(plain.upstreamCalls)} (${plain.upstreamCallsMin}-${plain.upstreamCallsMax})`,
          fmt(plain.agentCpuMs),
          fmt(plain.mockCpuMs),
        ],
      ],
    )

    // Throttled: 250 pods with the real SDK provider against a mock whose bucket holds 20 calls
    // and refills 20/s. A fresh agent and fresh tokens for every run.
    const throttledRuns = []
    for (let r = 0; r < throttledRunCount; r++) {
      const t = await fx.mint(BOOT_PODS, `boot-throttled-${r}`)
      throttledRuns.push(await throttledRun(fx, mock, t, 5))
    }
    await mock.faults({ throttleQps: 0 })
    const throttled = throttledSummary(throttledRuns)
    printTable(
      `Node boot herd vs a mock throttling above ${THROTTLE_RATE} calls/s (burst ${THROTTLE_BURST}): ` +
        `${BOOT_PODS} pods with the real SDK provider (fromHttp defaults: 4 attempts 1 s apart; the ` +
        `application asks again 1 s after a failure); median of ${throttledRunCount}`,
      [
        'mock',
        'all served ms',
        'rate allows ms',
        'ratio',
        'first ms',
        'p50 ms',
        'p90 ms',
        'served (min)',
        'upstream calls',
        'calls / served',
        'SDK attempts',
        'app calls',
        'agent CPU ms',
        'mock CPU ms',
      ],
      [
        [
          `throttles > ${THROTTLE_RATE}/s`,
          fmt(throttled.allServedMs, 0),
          fmt(RATE_ALLOWED_MS, 0),
          fmt(throttled.timeRatio, 2),
          fmt(throttled.firstServedMs, 0),
          fmt(throttled.p50Ms, 0),
          fmt(throttled.p90Ms, 0),
          `${fmt(throttled.servedMin)} / ${BOOT_PODS}`,
          `${fmt(throttled.upstreamCalls)} (max ${fmt(throttled.upstreamCallsMax)})`,
          fmt(throttled.callsPerServed, 2),
          fmt(throttled.attemptsTotal),
          fmt(throttled.appCalls),
          fmt(throttled.agentCpuMs),
          fmt(throttled.mockCpuMs),
        ],
      ],
    )
    printTable(
      'Throttled boot herd: answers and attempts (median of runs)',
      ['seen by', 'counts'],
      [
        ['agent pod_identity_http_response{code}', countsText(throttled.agentStatuses)],
        ['SDK attempts by outcome', countsText(throttled.attempts)],
        ['mock EKS Auth outcomes', countsText(throttled.upstream)],
        [
          '5xx other than JSON 503 + Retry-After (max of runs)',
          `${throttled.bad5xxMax} of ${fmt(throttled.fiveXX)} 5xx`,
        ],
        [
          'Retry-After values received (s: count)',
          Object.entries(throttled.retryAfter)
            .sort((a, b) => Number(a[0]) - Number(b[0]))
            .map(([k, v]) => `${k}: ${fmt(v)}`)
            .join(', ') || '-',
        ],
        ['SDK requestTimeout (1000 ms) warnings', fmt(throttled.requestTimeoutWarnings)],
        ['source address mismatches (shim check)', fmt(throttled.addressMismatches)],
      ],
    )

    const targets = [
      {
        target: 'boot herd: 0 errors (every run)',
        value: plain.errorsMax,
        ok: plain.errorsMax === 0,
      },
      {
        target: `boot herd: exactly ${BOOT_PODS} upstream calls (every run)`,
        value: plain.upstreamCalls,
        ok: plain.upstreamCallsMin === BOOT_PODS && plain.upstreamCallsMax === BOOT_PODS,
      },
      {
        target: 'boot herd: all served within 1 s (ms)',
        value: plain.completionMs,
        ok: plain.completionMs <= 1000,
      },
      {
        target: 'throttled boot: no 5xx but JSON 503 + Retry-After (max of runs)',
        value: throttled.bad5xxMax,
        ok: throttled.bad5xxMax === 0,
      },
      {
        target: 'throttled boot: upstream calls <= 1.2 x pods served (ratio)',
        value: throttled.callsPerServed,
        ok: throttled.callsPerServed <= 1.2,
      },
      {
        target: `throttled boot: all served within 1.3 x ${RATE_ALLOWED_MS / 1000} s (ratio)`,
        value: throttled.timeRatio,
        ok: throttled.allServedEveryRun && throttled.timeRatio <= 1.3,
      },
    ]
    for (const t of targets) t.verdict = verdict(t.ok)
    console.log(
      `results: ${writeResults('boot-herd', { plain, throttled, targets, plainRuns, throttledRuns })}`,
    )
    return targets
  } finally {
    await mock.stop()
  }
}
