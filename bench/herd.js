// 2. Same-token herd: 1000 concurrent first requests for one token, upstream latency 100 ms.
// 3. Node boot herd: 250 distinct pods at once (each its own token and source address),
//    upstream latency 50 ms; then the same against a mock throttling above 20 calls/s.
// Each run uses fresh tokens (a first request is a cache miss); upstream calls are read from the
// mock's /_mock/stats, reset before every run. Interleaved with every run, the same herd (same
// request bytes, same source addresses) against a bare node:http server answering at once gives
// the machine's floor: what answering that many simultaneous connections costs here at all.

import { podAddress, runHerdClient } from './lib/load.js'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fetchCredentials, startAgent, startBare, startMock } from './lib/servers.js'
import { fmt, median, printTable, verdict, writeResults } from './lib/report.js'
import { cpuMicros, sleep } from './lib/procs.js'

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
      await mock.reset()
      const cpu0 = [cpuMicros(agent.pid), cpuMicros(mock.pid)]
      const out = await runHerdClient(fx.dir, {
        ...spec,
        port: agent.port,
        hostHeader: agent.hostHeader,
      })
      const cpu = cpuSince(cpu0, agent, mock)
      const stats = await mock.stats()
      results.push({ ...out, ...cpu, upstreamCalls: stats.requests, upstream: stats.byOutcome })
      floors.push(await floorRun(fx, bare, spec))
    }
    const m = (f) => median(results.map((x) => x[f]))
    const summary = {
      requests: SAME_TOKEN_REQUESTS,
      upstreamCalls: m('upstreamCalls'),
      upstreamCallsMax: Math.max(...results.map((x) => x.upstreamCalls)),
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
          fmt(summary.completionMs, 1),
          fmt(summary.floorCompletionMs, 1),
          fmt(summary.firstAnswerMs, 1),
          fmt(summary.sendSpanMs, 1),
          fmt(summary.p50Ms, 1),
          fmt(summary.p99Ms, 1),
          `${fmt(summary.errors)} (max ${summary.errorsMax})`,
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
    await mock.reset()
    const cpu0 = [cpuMicros(agent.pid), cpuMicros(mock.pid)]
    const out = await runHerdClient(fx.dir, {
      ...spec,
      port: agent.port,
      hostHeader: agent.hostHeader,
    })
    const cpu = cpuSince(cpu0, agent, mock)
    const stats = await mock.stats()
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
  const m = (f) => median(results.map((x) => x[f]))
  const statuses = {}
  for (const code of new Set(results.flatMap((x) => Object.keys(x.statuses)))) {
    statuses[code] = median(results.map((x) => x.statuses[code] ?? 0))
  }
  return {
    pods: BOOT_PODS,
    completionMs: m('completionMs'),
    p50Ms: m('p50Ms'),
    p99Ms: m('p99Ms'),
    errors: m('errors'),
    errorsMax: Math.max(...results.map((x) => x.errors)),
    upstreamCalls: m('upstreamCalls'),
    upstreamCallsMin: Math.min(...results.map((x) => x.upstreamCalls)),
    upstreamCallsMax: Math.max(...results.map((x) => x.upstreamCalls)),
    statuses,
    connectMs: m('connectMs'),
    sendSpanMs: m('sendSpanMs'),
    firstAnswerMs: m('firstAnswerMs'),
    agentCpuMs: m('agentCpuMs'),
    mockCpuMs: m('mockCpuMs'),
    floorCompletionMs: m('floorCompletionMs'),
  }
}

export async function bootHerd({ fx, full }) {
  const runs = full ? 5 : 3
  const tokens = await fx.mint(runs * BOOT_PODS * 2 + 1, 'boot')
  const mock = await startMock(fx, { latencyMs: 50 })
  let agent
  let bare
  try {
    agent = await startAgent(fx, mock.url)
    bare = await startFloor(fx, agent, tokens[tokens.length - 1], 'boot')
    const plainRuns = await bootRuns(fx, mock, agent, bare, runs, tokens, async () => {})
    const plain = bootSummary(plainRuns)
    // Throttled: the mock's token bucket (rate = burst = 20) starts full for every run.
    const throttledRuns = await bootRuns(
      fx,
      mock,
      agent,
      bare,
      runs,
      tokens.slice(runs * BOOT_PODS),
      async () => {
        await mock.faults({ latencyMs: 50, throttleQps: 0 })
        await mock.faults({ throttleQps: 20 })
        await sleep(50)
      },
    )
    const throttled = bootSummary(throttledRuns)
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
        ['plain', plain],
        ['throttles > 20/s', throttled],
      ].map(([name, s]) => [
        name,
        fmt(s.completionMs, 1),
        fmt(s.floorCompletionMs, 1),
        fmt(s.firstAnswerMs, 1),
        fmt(s.sendSpanMs, 1),
        fmt(s.p50Ms, 1),
        fmt(s.p99Ms, 1),
        `${fmt(s.errors)} (max ${s.errorsMax})`,
        statusText(s.statuses),
        `${fmt(s.upstreamCalls)} (${s.upstreamCallsMin}-${s.upstreamCallsMax})`,
        fmt(s.agentCpuMs),
        fmt(s.mockCpuMs),
      ]),
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
    ]
    for (const t of targets) t.verdict = verdict(t.ok)
    // The throttled variant has no target: it is reported for what the pods see.
    targets.push({
      target: 'boot herd vs throttling mock (20/s): answered 200 (report only)',
      value: throttled.statuses['200'] ?? 0,
      ok: true,
      verdict: 'info',
    })
    console.log(
      `results: ${writeResults('boot-herd', { plain, throttled, targets, plainRuns, throttledRuns })}`,
    )
    return targets
  } finally {
    await bare?.stop()
    await agent?.stop()
    await mock.stop()
  }
}
