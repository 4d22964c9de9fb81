// Memory under cache churn (issue 24's soak, for real): the agent (--client-miss-rate 0, so that
// only the cache bounds the work) is warmed with 2000 pods, one token and source address each;
// its RSS is read once it has settled (steady state). Then 5000 distinct tokens are cycled
// through its 2000-entry cache from 5000 addresses, every request a miss that evicts another
// entry, for CHURN_S seconds, RSS sampled every second; then RSS again 10 s after. Report: RSS
// during churn (median, max) and after, over the steady state.

import { performance } from 'node:perf_hooks'
import { podAddress, runHerdClient } from './lib/load.js'
import { sleep } from './lib/procs.js'
import { MiB, fmt, median, printTable, writeResults } from './lib/report.js'
import { metricValue, startAgent, startMock } from './lib/servers.js'

const ENTRIES = 2000
const TOKENS = 5000

export async function cacheChurn({ fx, full }) {
  const churnS = full ? 30 : 12
  const tokens = await fx.mint(TOKENS, 'churn')
  const mock = await startMock(fx)
  const agent = await startAgent(fx, mock.url, { args: ['--client-miss-rate', '0'] })
  const pod = (i) => ({ token: tokens[i % TOKENS], localAddress: podAddress(7, i % TOKENS) })
  try {
    const warm = await runHerdClient(fx.dir, {
      port: agent.port,
      hostHeader: agent.hostHeader,
      mode: 'pool',
      concurrency: 16,
      timeoutMs: 10_000,
      requests: Array.from({ length: ENTRIES }, (_, i) => pod(i)),
    })
    if (warm.errors > 0) throw new Error(`warm-up: ${JSON.stringify(warm.statuses)}`)
    await sleep(10_000)
    const steady = agent.memory().rss
    // Churn: rounds over all 5000 tokens (each a miss: the cache holds 2000) until CHURN_S pass.
    const samples = []
    const sampler = setInterval(() => samples.push(agent.memory().rss), 1000)
    const t0 = performance.now()
    let requests = 0
    let errors = 0
    for (let round = 0; performance.now() - t0 < churnS * 1000; round++) {
      const r = await runHerdClient(fx.dir, {
        port: agent.port,
        hostHeader: agent.hostHeader,
        mode: 'pool',
        concurrency: 32,
        timeoutMs: 10_000,
        requests: Array.from({ length: TOKENS }, (_, i) => pod(ENTRIES + round * TOKENS + i)),
      })
      requests += TOKENS
      errors += r.errors
    }
    const churnMs = performance.now() - t0
    clearInterval(sampler)
    await sleep(10_000)
    const after = agent.memory().rss
    const text = await agent.metrics()
    const stats = await mock.stats()
    const result = {
      steadyMiB: steady / MiB,
      churnMedianMiB: median(samples) / MiB,
      churnMaxMiB: Math.max(...samples) / MiB,
      afterMiB: after / MiB,
      requests,
      missesPerS: requests / (churnMs / 1000),
      errors,
      entries: metricValue(text, 'pod_identity_cache_entries'),
      upstreamCalls: stats.requests,
    }
    printTable(
      `Cache churn: ${TOKENS} tokens cycled through ${ENTRIES} entries for ${churnS} s (RSS, MiB)`,
      [
        'steady (2000 entries)',
        'churn median',
        'churn max',
        '10 s after',
        'misses/s',
        'entries',
        'errors',
      ],
      [
        [
          fmt(result.steadyMiB, 1),
          fmt(result.churnMedianMiB, 1),
          fmt(result.churnMaxMiB, 1),
          fmt(result.afterMiB, 1),
          fmt(result.missesPerS),
          fmt(result.entries),
          fmt(result.errors),
        ],
      ],
    )
    const targets = [
      {
        target: 'RSS during cache churn over the steady state with 2000 entries (max; report only)',
        value: result.churnMaxMiB / result.steadyMiB,
        verdict: 'info',
      },
      {
        target: 'cache entries after churn stay at the bound (2000)',
        value: result.entries,
        verdict: result.entries <= ENTRIES && result.errors === 0 ? 'PASS' : 'FAIL',
      },
    ]
    writeResults('churn', { result, targets })
    return targets
  } finally {
    await Promise.all([agent.stop(), mock.stop()])
  }
}
