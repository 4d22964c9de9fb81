// Memory and start-up. Start-up: time from spawn to /readyz 200. Memory: every subject (the
// agent, a variant agent when one is set, and the floor: a bare node:http server holding what the
// agent's cache holds per pod, bench/lib/bare-server.js hold) runs the same script in turn,
// rotated each run: RSS idle, then 2000 pods warm it up (one token and source address each), RSS
// just after, some seconds later (and, with BENCH_MEMORY_SETTLE_S, where it settles), and under
// -c32 load with those entries. The figures that count are the agent's readings over the floor's.

import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { podAddress, runHerdClient, runLoad } from './lib/load.js'
import { sleep } from './lib/procs.js'
import {
  VARIANT,
  fetchCredentials,
  metricValue,
  startAgent,
  startBare,
  startMock,
} from './lib/servers.js'
import { MiB, fmt, median, printTable, verdict, writeResults } from './lib/report.js'

const ENTRIES = 2000

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
  // Answered once the snapshot (a synchronous write) is done: give it time on a busy machine.
  const metrics = await agent.metrics(30_000)
  rmSync(dir, { recursive: true, force: true })
  return metricValue(metrics, 'nodejs_heap_size_used_bytes')
}

function snapshotArgs(fx, name) {
  const dir = join(fx.dir, name)
  mkdirSync(dir, { recursive: true })
  return { dir, nodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${dir}`] }
}

/** RSS polled every second for settleS: the last reading, and when the last drop (> 2 %) came. */
async function settle(subject, settleS) {
  const t0 = Date.now()
  let last = subject.memory().rss
  let lastDropS = 0
  while (Date.now() - t0 < settleS * 1000) {
    await sleep(1000)
    const rss = subject.memory().rss
    if (rss < 0.98 * last) lastDropS = (Date.now() - t0) / 1000
    last = rss
  }
  return { rss: last, lastDropS }
}

export async function memoryAndStartup({ fx, full }) {
  const startups = full ? 15 : 3
  const memoryRuns = full ? 5 : 2
  const loadS = full ? 5 : 2
  const laterS = full ? 30 : 10
  // Where RSS settles (V8's memory reducer gives memory back a minute or two after a burst), in
  // the first run only; 0 skips it.
  const settleS = Number(process.env.BENCH_MEMORY_SETTLE_S ?? 0)
  const tokens = await fx.mint(ENTRIES, 'mem')
  const mock = await startMock(fx)
  const live = new Set()
  const bodyFile = join(fx.dir, 'memory-body.json')
  try {
    // Start-up: spawn -> /readyz 200, RSS then, and the live heap of an idle agent.
    const startup = []
    for (let i = 0; i < startups; i++) {
      const snap = snapshotArgs(fx, `snap-start-${i}`)
      const agent = await startAgent(fx, mock.url, { nodeArgs: snap.nodeArgs })
      live.add(agent)
      const rssBytes = agent.memory().rss
      let heapBytes = NaN
      if (i < (full ? 2 : 1)) {
        await sleep(1500)
        heapBytes = await liveHeap(agent, snap.dir)
      }
      if (i === 0) writeFileSync(bodyFile, (await fetchCredentials(agent, tokens[0])).body)
      startup.push({ readyMs: agent.readyMs, rssBytes, heapBytes })
      await agent.stop()
      live.delete(agent)
    }

    const subjects = [
      { key: 'agent', label: 'agent', start: (nodeArgs) => startAgent(fx, mock.url, { nodeArgs }) },
      ...(VARIANT
        ? [
            {
              key: 'variant',
              label: `variant (${VARIANT.label})`,
              start: (nodeArgs) =>
                startAgent(fx, mock.url, {
                  main: VARIANT.main,
                  nodeArgs: [...VARIANT.nodeArgs, ...nodeArgs],
                }),
            },
          ]
        : []),
      {
        key: 'floor',
        label: 'bare node:http holding the same entries',
        start: () => startBare(bodyFile, { hold: true }),
      },
    ]
    const runs = []
    for (let r = 0; r < memoryRuns; r++) {
      for (let k = 0; k < subjects.length; k++) {
        const subject = subjects[(k + r) % subjects.length]
        const snap =
          subject.key === 'floor' ? undefined : snapshotArgs(fx, `snap-${subject.key}-${r}`)
        const srv = await subject.start(snap?.nodeArgs ?? [])
        live.add(srv)
        // Past the agent's background warm-up of its miss path (1 s after start): idle.
        await sleep(1500)
        const idleRss = srv.memory().rss
        const warm = await runHerdClient(fx.dir, {
          port: srv.port,
          hostHeader: srv.hostHeader ?? `127.0.0.1:${srv.port}`,
          mode: 'pool',
          concurrency: 16,
          timeoutMs: 10_000,
          requests: tokens.map((token, i) => ({ token, localAddress: podAddress(5, i) })),
        })
        if (warm.errors > 0) {
          throw new Error(
            `${subject.label}: warming ${ENTRIES} entries: ${JSON.stringify(warm.statuses)}`,
          )
        }
        await sleep(2000)
        const afterRss = srv.memory().rss
        await sleep((laterS - 2) * 1000)
        const laterRss = srv.memory().rss
        const settled = r === 0 && settleS > 0 ? await settle(srv, settleS) : undefined
        const load = await runLoad({
          url: srv.url,
          token: tokens[0],
          connections: 32,
          durationS: loadS,
          watchPids: [srv.pid],
        })
        const run = {
          subject: subject.key,
          run: r,
          idleRss,
          afterRss,
          laterRss,
          settledRss: settled?.rss ?? NaN,
          settledAfterS: settled?.lastDropS ?? NaN,
          loadRss: load.rss[srv.pid],
          hwm: srv.memory().hwm,
          warmMs: warm.completionMs,
        }
        if (snap !== undefined) {
          const text = await srv.metrics()
          run.cacheEntries = metricValue(text, 'pod_identity_cache_entries')
          run.heapWithEntries = await liveHeap(srv, snap.dir)
        }
        runs.push(run)
        await srv.stop()
        live.delete(srv)
      }
    }

    const m = (list, f) => median(list.map((x) => x[f]))
    const of = (key) => runs.filter((x) => x.subject === key)
    const fields = ['idleRss', 'afterRss', 'laterRss', 'settledRss', 'loadRss', 'hwm']
    const summary = {
      readyMs: m(startup, 'readyMs'),
      readyMsMax: Math.max(...startup.map((x) => x.readyMs)),
      startRss: m(startup, 'rssBytes'),
      idleHeap: m(startup, 'heapBytes'),
      entriesHeap: m(of('agent'), 'heapWithEntries'),
      cacheEntries: m(of('agent'), 'cacheEntries'),
      tokenBytes: tokens[0].length,
    }
    for (const s of subjects) {
      summary[s.key] = Object.fromEntries(fields.map((f) => [f, m(of(s.key), f)]))
    }
    summary.bytesPerEntryHeap = (summary.entriesHeap - summary.idleHeap) / ENTRIES
    /** The agent's (or variant's) reading over the floor's, run by run; the median of those. */
    const overFloor = (key, f) =>
      median(
        of(key).map(
          (x) => x[f] / (runs.find((y) => y.subject === 'floor' && y.run === x.run)?.[f] ?? NaN),
        ),
      )
    const ratios = Object.fromEntries(
      subjects
        .filter((s) => s.key !== 'floor')
        .map((s) => [
          s.key,
          { later: overFloor(s.key, 'laterRss'), load: overFloor(s.key, 'loadRss') },
        ]),
    )

    printTable(
      `Start-up (median of ${startups})`,
      ['measure', 'value'],
      [
        [
          'spawn -> /readyz 200 (ms)',
          `${fmt(summary.readyMs, 1)} (max ${fmt(summary.readyMsMax, 1)})`,
        ],
        ['RSS at /readyz 200 (MiB)', fmt(summary.startRss / MiB, 1)],
        [
          'live V8 heap idle / with entries (MiB)',
          `${fmt(summary.idleHeap / MiB, 1)} / ${fmt(summary.entriesHeap / MiB, 1)}`,
        ],
        ['bytes per entry (live V8 heap delta)', fmt(summary.bytesPerEntryHeap)],
        [
          'cache entries (gauge) / token size (bytes)',
          `${fmt(summary.cacheEntries)} / ${fmt(summary.tokenBytes)}`,
        ],
      ],
    )
    const mib = (v) => fmt(v / MiB, 1)
    printTable(
      `Memory with ${ENTRIES} entries (RSS MiB, median of ${memoryRuns} runs, subjects rotated)`,
      ['reading', ...subjects.map((s) => s.label)],
      [
        ['idle, before the warm-up', ...subjects.map((s) => mib(summary[s.key].idleRss))],
        ['2 s after the warm-up', ...subjects.map((s) => mib(summary[s.key].afterRss))],
        [`${laterS} s after the warm-up`, ...subjects.map((s) => mib(summary[s.key].laterRss))],
        [
          `settled (first run, ${settleS} s; BENCH_MEMORY_SETTLE_S)`,
          ...subjects.map((s) => mib(summary[s.key].settledRss)),
        ],
        [`under -c32 load, ${loadS} s`, ...subjects.map((s) => mib(summary[s.key].loadRss))],
        ['peak (VmHWM)', ...subjects.map((s) => mib(summary[s.key].hwm))],
      ],
    )
    const targets = []
    for (const s of subjects.filter((x) => x.key !== 'floor')) {
      const name = s.key === 'agent' ? 'RSS' : `${s.label}: RSS`
      targets.push(
        {
          target: `${name} with ${ENTRIES} entries, ${laterS} s after, within 15 % of the floor (ratio)`,
          value: ratios[s.key].later,
          ok: ratios[s.key].later <= 1.15,
        },
        {
          target: `${name} with ${ENTRIES} entries under -c32 load within 15 % of the floor (ratio)`,
          value: ratios[s.key].load,
          ok: ratios[s.key].load <= 1.15,
        },
      )
    }
    targets.push({
      target: 'ready within 500 ms of spawn (ms, median)',
      value: summary.readyMs,
      ok: summary.readyMs <= 500,
    })
    for (const t of targets) t.verdict ??= verdict(t.ok)
    console.log(`results: ${writeResults('memory', { summary, ratios, startup, runs, targets })}`)
    return targets
  } finally {
    for (const a of live) await a.stop()
    await mock.stop()
  }
}
