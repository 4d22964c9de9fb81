// 4. Mixed realistic load: 250 warm pods polling at SDK-like intervals, then a herd of 250 new
//    pods arriving at once (mock latency 50 ms, no throttling). Latency percentiles of the warm
//    pods before the herd and while it is being served, the herd's time until all are served,
//    errors and upstream calls.
//
// Per run: bench/lib/mixed-client.js (warm pods, own process) and bench/lib/herd-client.js in
// `burst` mode (the new pods, own process) are spawned together and lined up on the shared wall
// clock: the warm pods start polling at S, the herd arrives at S + warm-up + baseline, polling
// stops shortly after the herd's last answer. Windows, by the start time of each warm request:
// "before" = the baseline window just before the herd arrives, "during" = from the herd's first
// connect to its last answer. Interleaved with every agent run (order alternating), the same
// polling and the same herd against a bare node:http server answering at once: what the machine
// and the two clients alone do to the warm pods' latency when 250 connections arrive together.

import { fmt, median, percentile, printTable, verdict, writeResults } from './lib/report.js'
import { podAddress, runHerdClient } from './lib/load.js'
import { fetchCredentials, startAgent, startBare, startMock } from './lib/servers.js'
import { cpuSampler, metricSamples, startJsonChild } from './lib/clients.js'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'

const WARM_PODS = 250
const HERD_PODS = 250
const MEAN_INTERVAL_MS = 1000
const WARM_BLOCK = 6
const HERD_BLOCK = 7

const epoch = () => performance.timeOrigin + performance.now()

/** Latency figures of the warm requests that started in [from, to). */
function windowStats(samples, from, to) {
  const ms = []
  let errors = 0
  for (let i = 0; i < samples.length; i += 3) {
    const start = samples[i]
    if (start < from || start >= to) continue
    ms.push(samples[i + 1])
    if (samples[i + 2] !== 200) errors++
  }
  return {
    samples: ms.length,
    errors,
    p50Ms: percentile(ms, 50),
    p99Ms: percentile(ms, 99),
    p999Ms: percentile(ms, 99.9),
    maxMs: ms.length > 0 ? Math.max(...ms) : NaN,
    latencies: ms,
  }
}

/**
 * One run against `server` ({ pid, port, hostHeader, mockPid? }): warm polling with a herd in
 * the middle. CPU of the server, the mock and both clients is sampled to tell, during the herd,
 * whether the server's thread was busy (its own work) or waiting for a core.
 */
async function mixedRun(fx, server, warmTokens, herdTokens, { warmupMs, baselineMs, tailMs }) {
  const startAt = epoch() + 700 // both children have booted by then
  const herdAt = startAt + warmupMs + baselineMs
  const poller = startJsonChild(
    fx.dir,
    'mixed-client.js',
    {
      port: server.port,
      hostHeader: server.hostHeader,
      meanIntervalMs: MEAN_INTERVAL_MS,
      startAtEpochMs: startAt,
      maxDurationMs: warmupMs + baselineMs + 30_000,
      pods: warmTokens.map((token, i) => ({ token, localAddress: podAddress(WARM_BLOCK, i) })),
    },
    120_000,
  )
  const herdClient = startJsonChild(
    fx.dir,
    'herd-client.js',
    {
      mode: 'burst',
      port: server.port,
      hostHeader: server.hostHeader,
      startAtEpochMs: herdAt,
      timeoutMs: 10_000,
      requests: herdTokens.map((token, i) => ({ token, localAddress: podAddress(HERD_BLOCK, i) })),
    },
    60_000,
  )
  const pids = [server.pid, server.mockPid ?? server.pid, poller.child.pid, herdClient.child.pid]
  const sampler = cpuSampler(pids)
  // The agent's event-loop delay during the herd: prom-client's histogram restarts at each
  // scrape, so scrape just before the herd and again once it is served.
  let scrapeBefore
  const lagTimer = server.metrics
    ? setTimeout(() => (scrapeBefore = server.metrics()), herdAt - epoch() - 50)
    : undefined
  let herd
  let loopDelay
  try {
    herd = await herdClient.result
    if (server.metrics) {
      await scrapeBefore
      loopDelay = agentLoopDelay(await server.metrics())
    }
  } finally {
    clearTimeout(lagTimer)
    // Poll a little past the herd's last answer, then stop the warm pods.
    await new Promise((resolve) => setTimeout(resolve, tailMs))
    poller.child.stdin.end('stop\n')
  }
  const warm = await poller.result
  const busy = sampler.stop()
  const [h0, h1] = [herd.startEpochMs, herd.endEpochMs]
  const before = windowStats(warm.samples, h0 - baselineMs, h0)
  const during = windowStats(warm.samples, h0, h1)
  const all = windowStats(warm.samples, warm.startEpochMs + warmupMs, Infinity)
  return {
    herd,
    before,
    during,
    warmErrorsAll: all.errors,
    warmRequests: all.samples,
    warmReasons: warm.reasons,
    herdWindowMs: h1 - h0,
    herdLateMs: h0 - herdAt,
    clientLoopDelayP99Ms: warm.clientLoopDelayP99Ms,
    clientLoopDelayMaxMs: warm.clientLoopDelayMaxMs,
    agentLoopDelayMaxMs: loopDelay?.maxMs ?? NaN,
    agentLoopDelayP99Ms: loopDelay?.p99Ms ?? NaN,
    // Share of one core over the window (1.0 = a whole core).
    serverBusyBefore: busy(0, h0 - baselineMs, h0),
    serverBusyDuring: busy(0, h0, h1),
    mockBusyDuring: server.mockPid ? busy(1, h0, h1) : NaN,
    clientsBusyDuring: busy(2, h0, h1) + busy(3, h0, h1),
  }
}

/**
 * prom-client's nodejs_eventloop_lag_{max,p99}_seconds in ms, less its 10 ms sampling
 * resolution (monitorEventLoopDelay records whole timer intervals).
 */
function agentLoopDelay(text) {
  const ms = (name) => Math.max(0, (metricSamples(text, name)[''] ?? NaN) * 1000 - 10)
  return {
    maxMs: ms('nodejs_eventloop_lag_max_seconds'),
    p99Ms: ms('nodejs_eventloop_lag_p99_seconds'),
  }
}

/** Medians over runs of the window figures, and the figures of all runs' samples pooled. */
function windowSummary(runs, key) {
  const w = runs.map((r) => r[key])
  const pooled = w.flatMap((x) => x.latencies)
  return {
    samples: median(w.map((x) => x.samples)),
    errors: Math.max(...w.map((x) => x.errors)),
    p50Ms: median(w.map((x) => x.p50Ms)),
    p99Ms: median(w.map((x) => x.p99Ms)),
    p999Ms: median(w.map((x) => x.p999Ms)),
    maxMs: median(w.map((x) => x.maxMs)),
    pooled: {
      samples: pooled.length,
      p99Ms: percentile(pooled, 99),
      p999Ms: percentile(pooled, 99.9),
      maxMs: pooled.length > 0 ? Math.max(...pooled) : NaN,
    },
  }
}

function summary(runs) {
  const m = (f) => median(runs.map(f))
  return {
    before: windowSummary(runs, 'before'),
    during: windowSummary(runs, 'during'),
    herdCompletionMs: m((r) => r.herd.completionMs),
    herdP50Ms: m((r) => r.herd.p50Ms),
    herdP99Ms: m((r) => r.herd.p99Ms),
    herdErrorsMax: Math.max(...runs.map((r) => r.herd.errors)),
    warmErrorsMax: Math.max(...runs.map((r) => r.warmErrorsAll)),
    warmRequests: m((r) => r.warmRequests),
    upstreamCalls: m((r) => r.upstreamCalls ?? NaN),
    upstreamCallsMin: Math.min(...runs.map((r) => r.upstreamCalls ?? NaN)),
    upstreamCallsMax: Math.max(...runs.map((r) => r.upstreamCalls ?? NaN)),
    clientLoopDelayMaxMs: m((r) => r.clientLoopDelayMaxMs),
    agentLoopDelayMaxMs: m((r) => r.agentLoopDelayMaxMs),
    agentLoopDelayP99Ms: m((r) => r.agentLoopDelayP99Ms),
    serverBusyBefore: m((r) => r.serverBusyBefore),
    serverBusyDuring: m((r) => r.serverBusyDuring),
    mockBusyDuring: m((r) => r.mockBusyDuring),
    clientsBusyDuring: m((r) => r.clientsBusyDuring),
  }
}

/** Drop the raw latencies from what goes to the JSON file (the windows' figures stay). */
function slim(run) {
  const { latencies: _b, ...before } = run.before
  const { latencies: _d, ...during } = run.during
  return { ...run, before, during }
}

export async function mixedLoad({ fx, full }) {
  const runs = full ? 4 : 2
  const timing = full
    ? { warmupMs: 1000, baselineMs: 4000, tailMs: 500 }
    : { warmupMs: 1000, baselineMs: 2000, tailMs: 300 }
  const warmTokens = await fx.mint(WARM_PODS, 'mixed-warm')
  const mock = await startMock(fx, { latencyMs: 50 })
  let agent
  let bare
  try {
    agent = await startAgent(fx, mock.url)
    // Warm the cache: every warm pod's first request (a miss) before any measurement.
    const fill = await runHerdClient(fx.dir, {
      mode: 'pool',
      port: agent.port,
      hostHeader: agent.hostHeader,
      concurrency: 16,
      requests: warmTokens.map((token, i) => ({ token, localAddress: podAddress(WARM_BLOCK, i) })),
    })
    if (fill.errors > 0) throw new Error(`warming the cache: ${JSON.stringify(fill.statuses)}`)
    const first = await fetchCredentials(agent, warmTokens[0])
    const bodyFile = join(fx.dir, 'mixed-body.json')
    writeFileSync(bodyFile, first.body)
    bare = await startBare(bodyFile)
    const bareServer = { pid: bare.pid, port: bare.port, hostHeader: `127.0.0.1:${bare.port}` }
    const agentServer = {
      pid: agent.pid,
      mockPid: mock.pid,
      port: agent.port,
      hostHeader: agent.hostHeader,
      metrics: agent.metrics,
    }

    const agentRuns = []
    const bareRuns = []
    for (let r = 0; r < runs; r++) {
      const herdTokens = await fx.mint(HERD_PODS, `mixed-herd-${r}`)
      const order = r % 2 === 0 ? ['agent', 'bare'] : ['bare', 'agent']
      for (const which of order) {
        if (which === 'agent') {
          await mock.reset()
          const run = await mixedRun(fx, agentServer, warmTokens, herdTokens, timing)
          const stats = await mock.stats()
          run.upstreamCalls = stats.requests
          run.upstream = stats.byOutcome
          agentRuns.push(run)
        } else {
          bareRuns.push(await mixedRun(fx, bareServer, warmTokens, herdTokens, timing))
        }
      }
    }
    const a = summary(agentRuns)
    const b = summary(bareRuns)
    const windowRow = (name, s) => [
      name,
      fmt(s.samples),
      fmt(s.p50Ms, 2),
      fmt(s.p99Ms, 2),
      fmt(s.p999Ms, 2),
      fmt(s.maxMs, 2),
      `${fmt(s.pooled.p99Ms, 2)} / ${fmt(s.pooled.p999Ms, 2)} (${s.pooled.samples})`,
      fmt(s.errors),
    ]
    printTable(
      `Mixed load: ${WARM_PODS} warm pods polling (Poisson, mean ${MEAN_INTERVAL_MS / 1000} s each, ` +
        `a connection per request), then ${HERD_PODS} new pods at once (upstream 50 ms); ` +
        `warm-pod latency in ms, median of ${runs} runs`,
      [
        'server, window',
        'requests',
        'p50',
        'p99',
        'p99.9',
        'max',
        'all runs pooled: p99 / p99.9 (n)',
        'errors',
      ],
      [
        windowRow(`agent, before the herd (${timing.baselineMs / 1000} s)`, a.before),
        windowRow('agent, during the herd', a.during),
        windowRow(`bare, before the herd (${timing.baselineMs / 1000} s)`, b.before),
        windowRow('bare, during the herd', b.during),
      ],
    )
    printTable(
      'Mixed load: the herd of new pods (time from its first connect); CPU as the share of one ' +
        'core over the herd window',
      [
        'server',
        'all served ms',
        'p50 ms',
        'p99 ms',
        'non-200 (max)',
        'upstream calls',
        'warm errors (max)',
        'server CPU before',
        'server CPU during',
        'mock CPU during',
        'clients CPU during',
        'server loop delay max ms',
        'warm client loop delay max ms',
      ],
      [
        ['agent', a],
        ['bare', b],
      ].map(([name, s]) => [
        name,
        fmt(s.herdCompletionMs, 1),
        fmt(s.herdP50Ms, 1),
        fmt(s.herdP99Ms, 1),
        fmt(s.herdErrorsMax),
        name === 'agent'
          ? `${fmt(s.upstreamCalls)} (${s.upstreamCallsMin}-${s.upstreamCallsMax})`
          : '-',
        fmt(s.warmErrorsMax),
        fmt(s.serverBusyBefore, 2),
        fmt(s.serverBusyDuring, 2),
        fmt(s.mockBusyDuring, 2),
        fmt(s.clientsBusyDuring, 2),
        name === 'agent' ? fmt(s.agentLoopDelayMaxMs, 0) : '-',
        fmt(s.clientLoopDelayMaxMs, 1),
      ]),
    )
    const targets = [
      {
        target: 'mixed: warm pods and herd, 0 errors (every run)',
        value: Math.max(a.warmErrorsMax, a.herdErrorsMax),
        ok: a.warmErrorsMax === 0 && a.herdErrorsMax === 0,
      },
      {
        target: `mixed: herd, exactly ${HERD_PODS} upstream calls (every run)`,
        value: a.upstreamCalls,
        ok: a.upstreamCallsMin === HERD_PODS && a.upstreamCallsMax === HERD_PODS,
      },
      {
        target: 'mixed: herd all served within 1 s (ms)',
        value: a.herdCompletionMs,
        ok: a.herdCompletionMs <= 1000,
      },
      {
        target: 'mixed: warm p99 before / during the herd, agent (ms)',
        value: `${fmt(a.before.p99Ms, 2)} / ${fmt(a.during.p99Ms, 2)}`,
        ok: true,
        verdict: 'info',
      },
      {
        target: 'mixed: warm p99 during the herd, agent / bare (ratio)',
        value: a.during.p99Ms / b.during.p99Ms,
        ok: true,
        verdict: 'info',
      },
    ]
    for (const t of targets) t.verdict ??= verdict(t.ok)
    console.log(
      `results: ${writeResults('mixed', {
        timing,
        agent: a,
        bare: b,
        targets,
        agentRuns: agentRuns.map(slim),
        bareRuns: bareRuns.map(slim),
      })}`,
    )
    return targets
  } finally {
    await bare?.stop()
    await agent?.stop()
    await mock.stop()
  }
}
