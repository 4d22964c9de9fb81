// 5. Memory and start-up: time from spawn to /readyz 200; RSS right after start (idle), with 2000
// cached entries (idle again), and under hot-path load with those entries; bytes per entry from
// the RSS delta and from the V8 heap delta (nodejs_heap_size_used_bytes of /metrics).

import { podAddress, runHerdClient, runLoad } from './lib/load.js'
import { sleep } from './lib/procs.js'
import { metricValue, startAgent, startMock } from './lib/servers.js'
import { MiB, fmt, median, printTable, verdict, writeResults } from './lib/report.js'

const ENTRIES = 2000

async function heapUsed(agent) {
  return metricValue(await agent.metrics(), 'nodejs_heap_size_used_bytes')
}

export async function memoryAndStartup({ fx, full }) {
  const startups = full ? 15 : 5
  const memoryRuns = full ? 5 : 3
  const loadS = full ? 5 : 2
  const tokens = await fx.mint(ENTRIES, 'mem')
  const mock = await startMock(fx)
  const live = new Set()
  try {
    // Start-up: spawn -> /readyz 200, and RSS just after.
    const startup = []
    for (let i = 0; i < startups; i++) {
      const agent = await startAgent(fx, mock.url)
      live.add(agent)
      startup.push({ readyMs: agent.readyMs, rssBytes: agent.memory().rss })
      await agent.stop()
      live.delete(agent)
    }

    const runs = []
    for (let r = 0; r < memoryRuns; r++) {
      const agent = await startAgent(fx, mock.url)
      live.add(agent)
      await sleep(500)
      const idle = agent.memory().rss
      const heap0 = await heapUsed(agent)
      const warm = await runHerdClient(fx.dir, {
        port: agent.port,
        hostHeader: agent.hostHeader,
        mode: 'pool',
        concurrency: 16,
        timeoutMs: 10_000,
        requests: tokens.map((token, i) => ({ token, localAddress: podAddress(5, i) })),
      })
      if (warm.errors > 0) {
        throw new Error(`warming ${ENTRIES} entries: ${JSON.stringify(warm.statuses)}`)
      }
      await sleep(1000)
      const withEntries = agent.memory().rss
      const metrics = await agent.metrics()
      const heap1 = metricValue(metrics, 'nodejs_heap_size_used_bytes')
      const entries = metricValue(metrics, 'pod_identity_cache_entries')
      const load = await runLoad({
        url: agent.url,
        token: tokens[0],
        connections: 32,
        durationS: loadS,
        watchPids: [agent.pid],
      })
      runs.push({
        idleRss: idle,
        entriesRss: withEntries,
        loadRss: load.rss[agent.pid],
        hwm: agent.memory().hwm,
        cacheEntries: entries,
        bytesPerEntryRss: (withEntries - idle) / ENTRIES,
        bytesPerEntryHeap: (heap1 - heap0) / ENTRIES,
        warmMs: warm.completionMs,
        loadRps: load.rps,
      })
      await agent.stop()
      live.delete(agent)
    }

    const m = (list, f) => median(list.map((x) => x[f]))
    const summary = {
      readyMs: m(startup, 'readyMs'),
      readyMsMax: Math.max(...startup.map((x) => x.readyMs)),
      startRss: m(startup, 'rssBytes'),
      idleRss: m(runs, 'idleRss'),
      entriesRss: m(runs, 'entriesRss'),
      loadRss: m(runs, 'loadRss'),
      hwm: m(runs, 'hwm'),
      cacheEntries: m(runs, 'cacheEntries'),
      bytesPerEntryRss: m(runs, 'bytesPerEntryRss'),
      bytesPerEntryHeap: m(runs, 'bytesPerEntryHeap'),
      tokenBytes: tokens[0].length,
    }
    printTable(
      `Memory and start-up (start-up: median of ${startups}; memory: median of ${memoryRuns})`,
      ['measure', 'value'],
      [
        ['spawn -> /readyz 200 (ms)', `${fmt(summary.readyMs, 1)} (max ${fmt(summary.readyMsMax, 1)})`],
        ['RSS idle after start (MiB)', fmt(summary.idleRss / MiB, 1)],
        [`RSS with ${ENTRIES} entries, idle (MiB)`, fmt(summary.entriesRss / MiB, 1)],
        [`RSS with ${ENTRIES} entries, under load -c32 (MiB)`, fmt(summary.loadRss / MiB, 1)],
        ['peak RSS, VmHWM (MiB)', fmt(summary.hwm / MiB, 1)],
        ['bytes per entry (RSS delta)', fmt(summary.bytesPerEntryRss)],
        ['bytes per entry (V8 heap delta)', fmt(summary.bytesPerEntryHeap)],
        ['cache entries (gauge)', fmt(summary.cacheEntries)],
        ['token size (bytes)', fmt(summary.tokenBytes)],
      ],
    )
    const targets = [
      {
        target: `RSS <= 70 MiB with ${ENTRIES} entries (MiB, idle)`,
        value: summary.entriesRss / MiB,
        ok: summary.entriesRss <= 70 * MiB,
      },
      {
        target: `RSS <= 70 MiB with ${ENTRIES} entries (MiB, under load)`,
        value: summary.loadRss / MiB,
        ok: summary.loadRss <= 70 * MiB,
      },
      {
        target: 'ready within 500 ms of spawn (ms, median)',
        value: summary.readyMs,
        ok: summary.readyMs <= 500,
      },
    ]
    for (const t of targets) t.verdict = verdict(t.ok)
    console.log(`results: ${writeResults('memory', { summary, startup, runs, targets })}`)
    return targets
  } finally {
    for (const a of live) await a.stop()
    await mock.stop()
  }
}
