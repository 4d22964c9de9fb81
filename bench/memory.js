// 5. Memory and start-up: time from spawn to /readyz 200; RSS at readiness, idle 1.5 s after
// start (once the agent has loaded the miss path in the background), with 2000 cached entries
// (just after the warm-up, once the agent's idle trimmer has run, and settled after V8's memory
// reducer), and under hot-path load with those entries; bytes per entry from the RSS delta and
// from the live V8 heap delta (heap snapshots). The floor, after each agent run: a bare node:http
// server (bench/lib/bare-server.js hold) in the same environment, warmed by the same requests,
// holding what the agent's cache holds per pod (token, body, headers) and nothing else.

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { podAddress, runHerdClient, runLoad } from './lib/load.js'
import { sleep } from './lib/procs.js'
import { fetchCredentials, metricValue, startAgent, startBare, startMock } from './lib/servers.js'
import { MiB, fmt, median, printTable, verdict, writeResults } from './lib/report.js'

const ENTRIES = 2000
/** How long to wait for the idle trimmer's drop, s. */
const TRIM_WAIT_S = 40
/** When the bare floor's later reading is taken, s after its warm-up (the agent trims by then). */
const FLOOR_LATER_S = 10
/** How long the bare floor's settled reading polls at most, s (first run only). */
const FLOOR_SETTLE_MAX_S = 60

/**
 * The agent's live V8 heap: SIGUSR2 makes it write a heap snapshot (--heapsnapshot-signal), which
 * runs a full GC first; /metrics answers once the snapshot is written and then reports the heap
 * used without garbage. Taken only after the RSS readings, since the snapshot itself grows RSS.
 */
async function liveHeap(agent, dir) {
  process.kill(agent.pid, 'SIGUSR2')
  const deadline = Date.now() + 20_000
  while (Date.now() < deadline && !readdirSync(dir).some((f) => f.endsWith('.heapsnapshot'))) {
    await sleep(10)
  }
  const metrics = await agent.metrics()
  rmSync(dir, { recursive: true, force: true })
  return metricValue(metrics, 'nodejs_heap_size_used_bytes')
}

/**
 * What becomes of the RSS an idle agent holds after the warm-up, polled every second from
 * `from` (the reading just after it):
 * - trimmed: the first reading below 85 % of `from`, when the agent's idle-heap trimmer has
 *   given the young generation back (src/util/v8-memory.ts; 5-15 s after a burst);
 * - settled: with `settleS`, polling goes on that long and reports the last reading and when the
 *   last drop of more than 2 % happened (V8's memory reducer, 60-110 s after a burst on Node 20).
 * Polling stops at trimS when nothing was trimmed, or once trimmed when there is no settleS.
 */
async function idleTimeline(agent, from, { trimS, settleS = 0 }) {
  const t0 = Date.now()
  const secs = () => (Date.now() - t0) / 1000
  let trimmed
  let last = from
  let lastDropS = 0
  for (;;) {
    await sleep(1000)
    const rss = agent.memory().rss
    if (rss < 0.98 * last) lastDropS = secs()
    last = rss
    if (trimmed === undefined && rss < 0.85 * from) trimmed = { rss, afterS: secs() }
    if (settleS > 0 ? secs() >= settleS : trimmed !== undefined || secs() >= trimS) break
  }
  return {
    trimmedRss: trimmed?.rss ?? NaN,
    trimmedAfterS: trimmed?.afterS ?? NaN,
    settledRss: settleS > 0 ? last : NaN,
    settledAfterS: settleS > 0 ? lastDropS : NaN,
  }
}

function snapshotArgs(fx, name) {
  const dir = join(fx.dir, name)
  mkdirSync(dir, { recursive: true })
  return { dir, nodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] }
}

export async function memoryAndStartup({ fx, full }) {
  const startups = full ? 15 : 3
  const memoryRuns = full ? 5 : 2
  const loadS = full ? 5 : 1
  // Settled idle RSS (see idleTimeline), first memory run only: 150 s in the full run;
  // BENCH_MEMORY_SETTLE_S sets it (0 skips it, the short run's default).
  const settleMaxS = Number(process.env.BENCH_MEMORY_SETTLE_S ?? (full ? 150 : 0))
  const tokens = await fx.mint(ENTRIES, 'mem')
  const mock = await startMock(fx)
  const live = new Set()
  /** The herd that fills a server's cache: every token once, each from its own pod address. */
  const warmUp = (srv) =>
    runHerdClient(fx.dir, {
      port: srv.port,
      hostHeader: srv.hostHeader ?? `127.0.0.1:${srv.port}`,
      mode: 'pool',
      concurrency: 16,
      timeoutMs: 10_000,
      requests: tokens.map((token, i) => ({ token, localAddress: podAddress(5, i) })),
    })
  const bodyFile = join(fx.dir, 'memory-body.json')
  try {
    // Start-up: spawn -> /readyz 200, and RSS just after.
    const startup = []
    for (let i = 0; i < startups; i++) {
      const snap = snapshotArgs(fx, `snap-start-${i}`)
      const agent = await startAgent(fx, mock.url, { nodeArgs: snap.nodeArgs })
      live.add(agent)
      const rssBytes = agent.memory().rss
      // The live heap of an idle agent with the miss path loaded, from the first start-ups only
      // (a snapshot costs time).
      let heapBytes = NaN
      if (i < (full ? 2 : 1)) {
        await sleep(1500)
        heapBytes = await liveHeap(agent, snap.dir)
      }
      startup.push({ readyMs: agent.readyMs, rssBytes, heapBytes })
      await agent.stop()
      live.delete(agent)
    }

    const runs = []
    for (let r = 0; r < memoryRuns; r++) {
      const snap = snapshotArgs(fx, `snap-mem-${r}`)
      const agent = await startAgent(fx, mock.url, { nodeArgs: snap.nodeArgs })
      live.add(agent)
      // Past the agent's background load of the miss path (1 s after start): an idle agent.
      await sleep(1500)
      const idle = agent.memory().rss
      const warm = await warmUp(agent)
      if (warm.errors > 0) {
        throw new Error(`warming ${ENTRIES} entries: ${JSON.stringify(warm.statuses)}`)
      }
      await sleep(full ? 2000 : 500)
      const withEntries = agent.memory().rss
      const before = await agent.metrics()
      const entries = metricValue(before, 'pod_identity_cache_entries')
      const heapTotal = metricValue(before, 'nodejs_heap_size_total_bytes')
      const external = metricValue(before, 'nodejs_external_memory_bytes')
      // The trimmer's reading in every full run and in the short run's first; the memory
      // reducer's settled reading in the first run only.
      const timeline =
        full || r === 0
          ? await idleTimeline(agent, withEntries, {
              trimS: TRIM_WAIT_S,
              settleS: r === 0 ? settleMaxS : 0,
            })
          : undefined
      const load = await runLoad({
        url: agent.url,
        token: tokens[0],
        connections: 32,
        durationS: loadS,
        watchPids: [agent.pid],
      })
      const hwm = agent.memory().hwm
      if (r === 0) writeFileSync(bodyFile, (await fetchCredentials(agent, tokens[0])).body)
      const heapWithEntries = await liveHeap(agent, snap.dir)
      runs.push({
        heapWithEntries,
        heapTotal,
        external,
        idleRss: idle,
        entriesRss: withEntries,
        trimmedRss: timeline?.trimmedRss ?? NaN,
        trimmedAfterS: timeline?.trimmedAfterS ?? NaN,
        settledRss: timeline?.settledRss ?? NaN,
        settledAfterS: timeline?.settledAfterS ?? NaN,
        loadRss: load.rss[agent.pid],
        hwm,
        cacheEntries: entries,
        bytesPerEntryRss: (withEntries - idle) / ENTRIES,
        warmMs: warm.completionMs,
        loadRps: load.rps,
      })
      await agent.stop()
      live.delete(agent)

      // The floor: node:http holding the same entries, read at the same times.
      const bare = await startBare(bodyFile, { hold: true })
      live.add(bare)
      await sleep(1500)
      const bareIdle = bare.memory().rss
      const bareWarm = await warmUp(bare)
      if (bareWarm.errors > 0) throw new Error(`warming the bare floor: ${bareWarm.errors} errors`)
      await sleep(full ? 2000 : 500)
      const bareEntries = bare.memory().rss
      const floorSettleS = r === 0 ? Math.min(settleMaxS, FLOOR_SETTLE_MAX_S) : 0
      const floorTimeline = full
        ? await idleTimeline(bare, bareEntries, {
            trimS: FLOOR_LATER_S,
            settleS: Math.max(floorSettleS, FLOOR_LATER_S),
          })
        : undefined
      Object.assign(runs.at(-1), {
        floorIdleRss: bareIdle,
        floorEntriesRss: bareEntries,
        floorSettledRss: floorSettleS > 0 ? (floorTimeline?.settledRss ?? NaN) : NaN,
        floorLaterRss:
          floorTimeline !== undefined && floorSettleS === 0 ? floorTimeline.settledRss : NaN,
      })
      await bare.stop()
      live.delete(bare)
    }

    const m = (list, f) => median(list.map((x) => x[f]))
    const summary = {
      readyMs: m(startup, 'readyMs'),
      readyMsMax: Math.max(...startup.map((x) => x.readyMs)),
      startRss: m(startup, 'rssBytes'),
      idleRss: m(runs, 'idleRss'),
      entriesRss: m(runs, 'entriesRss'),
      trimmedRss: m(runs, 'trimmedRss'),
      trimmedAfterS: m(runs, 'trimmedAfterS'),
      trimmedRuns: runs.filter((x) => Number.isFinite(x.trimmedRss)).length,
      timelineRuns: full ? runs.length : 1,
      settledRss: m(runs, 'settledRss'),
      settledAfterS: m(runs, 'settledAfterS'),
      loadRss: m(runs, 'loadRss'),
      hwm: m(runs, 'hwm'),
      cacheEntries: m(runs, 'cacheEntries'),
      bytesPerEntryRss: m(runs, 'bytesPerEntryRss'),
      idleHeap: m(startup, 'heapBytes'),
      entriesHeap: m(runs, 'heapWithEntries'),
      heapTotal: m(runs, 'heapTotal'),
      external: m(runs, 'external'),
      tokenBytes: tokens[0].length,
      floorIdleRss: m(runs, 'floorIdleRss'),
      floorEntriesRss: m(runs, 'floorEntriesRss'),
      floorLaterRss: m(runs, 'floorLaterRss'),
      floorSettledRss: m(runs, 'floorSettledRss'),
    }
    summary.bytesPerEntryHeap = (summary.entriesHeap - summary.idleHeap) / ENTRIES
    printTable(
      `Memory and start-up (start-up: median of ${startups}; memory: median of ${memoryRuns})`,
      ['measure', 'value'],
      [
        [
          'spawn -> /readyz 200 (ms)',
          `${fmt(summary.readyMs, 1)} (max ${fmt(summary.readyMsMax, 1)})`,
        ],
        ['RSS at /readyz 200, before the miss path loads (MiB)', fmt(summary.startRss / MiB, 1)],
        ['RSS idle 1.5 s after start, miss path loaded (MiB)', fmt(summary.idleRss / MiB, 1)],
        [
          `RSS with ${ENTRIES} entries, ${full ? 2 : 0.5} s after the warm-up (MiB)`,
          fmt(summary.entriesRss / MiB, 1),
        ],
        [
          `RSS with ${ENTRIES} entries once the idle trimmer ran (MiB; s after warm-up)`,
          summary.trimmedRuns > 0
            ? `${fmt(summary.trimmedRss / MiB, 1)} (${fmt(summary.trimmedAfterS)} s; ` +
              `${summary.trimmedRuns} of ${summary.timelineRuns} runs within ${TRIM_WAIT_S} s)`
            : `not within ${TRIM_WAIT_S} s (${summary.timelineRuns} runs)`,
        ],
        [
          `RSS with ${ENTRIES} entries, settled idle (MiB; first run, last drop s after warm-up)`,
          Number.isFinite(summary.settledRss)
            ? `${fmt(summary.settledRss / MiB, 1)} (${fmt(summary.settledAfterS)} s of ${settleMaxS})`
            : 'not measured (BENCH_MEMORY_SETTLE_S)',
        ],
        [`RSS with ${ENTRIES} entries, under load -c32 (MiB)`, fmt(summary.loadRss / MiB, 1)],
        ['peak RSS, VmHWM (MiB)', fmt(summary.hwm / MiB, 1)],
        ['bytes per entry (RSS delta)', fmt(summary.bytesPerEntryRss)],
        [
          'live V8 heap idle / with entries (MiB)',
          `${fmt(summary.idleHeap / MiB, 1)} / ${fmt(summary.entriesHeap / MiB, 1)}`,
        ],
        ['bytes per entry (live V8 heap delta)', fmt(summary.bytesPerEntryHeap)],
        [
          `V8 heap committed / external with ${ENTRIES} entries (MiB)`,
          `${fmt(summary.heapTotal / MiB, 1)} / ${fmt(summary.external / MiB, 1)}`,
        ],
        ['cache entries (gauge)', fmt(summary.cacheEntries)],
        ['token size (bytes)', fmt(summary.tokenBytes)],
      ],
    )
    printTable(
      `The floor: a bare node:http server holding the same ${ENTRIES} entries (token, body, headers), same environment and warm-up; median of ${memoryRuns}`,
      ['measure', 'bare node:http', 'agent'],
      [
        [
          'RSS idle before the warm-up (MiB)',
          fmt(summary.floorIdleRss / MiB, 1),
          fmt(summary.idleRss / MiB, 1),
        ],
        [
          `RSS with ${ENTRIES} entries, ${full ? 2 : 0.5} s after the warm-up (MiB)`,
          fmt(summary.floorEntriesRss / MiB, 1),
          fmt(summary.entriesRss / MiB, 1),
        ],
        [
          `RSS with ${ENTRIES} entries, ${FLOOR_LATER_S} s after (MiB; agent: once trimmed)`,
          fmt(summary.floorLaterRss / MiB, 1),
          fmt(summary.trimmedRss / MiB, 1),
        ],
        [
          `RSS with ${ENTRIES} entries, settled idle (MiB; first run; bare: last of ${FLOOR_SETTLE_MAX_S} s at most)`,
          fmt(summary.floorSettledRss / MiB, 1),
          fmt(summary.settledRss / MiB, 1),
        ],
      ],
    )
    const targets = [
      {
        target: `RSS <= 70 MiB with ${ENTRIES} entries (MiB, idle)`,
        value: summary.entriesRss / MiB,
        ok: summary.entriesRss <= 70 * MiB,
      },
      {
        target: `RSS <= 70 MiB with ${ENTRIES} entries (MiB, idle after the trimmer)`,
        value: summary.trimmedRss / MiB,
        ok: summary.trimmedRss <= 70 * MiB,
      },
      ...(Number.isFinite(summary.settledRss)
        ? [
            {
              target: `RSS <= 70 MiB with ${ENTRIES} entries (MiB, settled idle, first run)`,
              value: summary.settledRss / MiB,
              ok: summary.settledRss <= 70 * MiB,
            },
          ]
        : []),
      {
        target: `RSS <= 70 MiB with ${ENTRIES} entries (MiB, under load)`,
        value: summary.loadRss / MiB,
        ok: summary.loadRss <= 70 * MiB,
      },
      ...(Number.isFinite(summary.floorSettledRss)
        ? [
            {
              target: `bare node:http holding the same ${ENTRIES} entries, settled (MiB; report only)`,
              value: summary.floorSettledRss / MiB,
              ok: true,
              verdict: 'info',
            },
          ]
        : []),
      {
        target: 'ready within 500 ms of spawn (ms, median)',
        value: summary.readyMs,
        ok: summary.readyMs <= 500,
      },
    ]
    for (const t of targets) t.verdict ??= verdict(t.ok)
    console.log(`results: ${writeResults('memory', { summary, startup, runs, targets })}`)
    return targets
  } finally {
    for (const a of live) await a.stop()
    await mock.stop()
  }
}
