// Hot path: a warm token, 32 and 128 connections, against the agent at its defaults (-v info,
// metrics on), the agent at -v trace, a variant agent when one is set (servers.js VARIANT: an A/B
// of a build or a node flag), and a bare node:http server in its own process sending the same
// bytes. Runs interleave (then rotate) so the machine's drift cancels out; each figure is the
// median of the rounds, each ratio the median of the per-round ratios.

import { writeFileSync, truncateSync } from 'node:fs'
import { join } from 'node:path'
import { runLoad, loadGenerator } from './lib/load.js'
import { VARIANT, fetchCredentials, startAgent, startBare, startMock } from './lib/servers.js'
import { MiB, fmt, median, printTable, verdict, writeResults } from './lib/report.js'

export async function hotPath({ fx, full }) {
  const connectionsList = [32, 128]
  // This machine's speed drifts by +-30 % within seconds (shared host): many short interleaved
  // rounds and per-round ratios cancel that better than a few long runs.
  const rounds = full ? 10 : 5
  const durationS = full ? 3 : 1
  const warmS = full ? 2 : 1
  const [token] = await fx.mint(1, 'hot')

  const mock = await startMock(fx)
  const servers = []
  try {
    const info = await startAgent(fx, mock.url, { verbosity: 'info' })
    servers.push(info)
    const trace = await startAgent(fx, mock.url, { verbosity: 'trace' })
    servers.push(trace)
    const variant =
      VARIANT &&
      (await startAgent(fx, mock.url, { main: VARIANT.main, nodeArgs: VARIANT.nodeArgs }))
    if (variant) servers.push(variant)
    let hitBody
    for (const agent of [info, trace, ...(variant ? [variant] : [])]) {
      const first = await fetchCredentials(agent, token)
      if (first.status !== 200) throw new Error(`warm-up request: ${first.status} ${first.body}`)
      hitBody ??= first.body
    }
    const bodyFile = join(fx.dir, 'hit-body.json')
    writeFileSync(bodyFile, hitBody)
    const bare = await startBare(bodyFile)
    servers.push(bare)

    const targets = [
      { key: 'info', label: 'agent -v info', srv: info },
      { key: 'trace', label: 'agent -v trace', srv: trace },
      ...(variant ? [{ key: 'variant', label: `variant (${VARIANT.label})`, srv: variant }] : []),
      { key: 'bare', label: 'bare node:http', srv: bare },
    ]
    // -v trace at 128 connections only in the full run (keeps npm run bench under 2 minutes).
    const targetsAt = (connections) =>
      connections === 32 || full ? targets : targets.filter((t) => t.key !== 'trace')
    const runs = []
    for (const connections of connectionsList) {
      const active = targetsAt(connections)
      for (const t of active) {
        await runLoad({ url: t.srv.url, token, connections, durationS: warmS })
      }
      truncateSync(trace.logFile, 0)
      for (let round = 0; round < rounds; round++) {
        for (let k = 0; k < active.length; k++) {
          const t = active[(k + round) % active.length]
          const r = await runLoad({
            url: t.srv.url,
            token,
            connections,
            durationS,
            watchPids: [t.srv.pid],
          })
          runs.push({
            target: t.key,
            connections,
            round,
            rps: r.rps,
            requests: r.requests,
            p50Us: r.p50Us,
            p99Us: r.p99Us,
            p999Us: r.p999Us,
            maxUs: r.maxUs,
            errors: r.errors,
            non2xx: r.non2xx,
            cpuUsPerRequest: r.cpuUsPerRequest[t.srv.pid],
            cpuCores: r.cpuUs[t.srv.pid] / (durationS * 1e6),
            rssBytes: r.rss[t.srv.pid],
          })
          // Trace logs go to a file (O_APPEND): keep it from growing across runs.
          if (t.key === 'trace') truncateSync(trace.logFile, 0)
        }
      }
    }

    const summary = {}
    for (const connections of connectionsList) {
      for (const t of targetsAt(connections)) {
        const rs = runs.filter((r) => r.connections === connections && r.target === t.key)
        const m = (f) => median(rs.map((r) => r[f]))
        summary[`${t.key}@${connections}`] = {
          target: t.label,
          connections,
          rps: m('rps'),
          p50Us: m('p50Us'),
          p99Us: m('p99Us'),
          p999Us: m('p999Us'),
          cpuUsPerRequest: m('cpuUsPerRequest'),
          cpuCores: m('cpuCores'),
          rssBytes: m('rssBytes'),
          errors: rs.reduce((s, r) => s + r.errors + r.non2xx, 0),
        }
      }
    }
    /** Per-round ratios a/b of a field; their median is what the targets are checked against. */
    const perRound = (connections, a, b, field) =>
      Array.from({ length: rounds }, (_, round) => {
        const ra = runs.find(
          (r) => r.connections === connections && r.round === round && r.target === a,
        )
        const rb = runs.find(
          (r) => r.connections === connections && r.round === round && r.target === b,
        )
        return ra && rb ? ra[field] / rb[field] : NaN
      }).filter((x) => Number.isFinite(x))
    const ratio = (connections, a, b, field) => median(perRound(connections, a, b, field))
    const spread = {}
    const ratios = {}
    for (const c of connectionsList) {
      ratios[c] = {
        infoVsBareRps: ratio(c, 'info', 'bare', 'rps'),
        infoVsBareCpu: ratio(c, 'info', 'bare', 'cpuUsPerRequest'),
        infoVsBareRss: ratio(c, 'info', 'bare', 'rssBytes'),
        traceVsInfoRps: ratio(c, 'trace', 'info', 'rps'),
        traceVsInfoCpu: ratio(c, 'trace', 'info', 'cpuUsPerRequest'),
        variantVsBareRps: ratio(c, 'variant', 'bare', 'rps'),
        variantVsBareCpu: ratio(c, 'variant', 'bare', 'cpuUsPerRequest'),
        variantVsBareRss: ratio(c, 'variant', 'bare', 'rssBytes'),
      }
      const range = (list) => (list.length ? [Math.min(...list), Math.max(...list)] : [NaN, NaN])
      spread[c] = {
        infoVsBareRps: range(perRound(c, 'info', 'bare', 'rps')),
        infoVsBareCpu: range(perRound(c, 'info', 'bare', 'cpuUsPerRequest')),
        infoVsBareRss: range(perRound(c, 'info', 'bare', 'rssBytes')),
        traceVsInfoRps: range(perRound(c, 'trace', 'info', 'rps')),
        traceVsInfoCpu: range(perRound(c, 'trace', 'info', 'cpuUsPerRequest')),
        variantVsBareRps: range(perRound(c, 'variant', 'bare', 'rps')),
        variantVsBareCpu: range(perRound(c, 'variant', 'bare', 'cpuUsPerRequest')),
        variantVsBareRss: range(perRound(c, 'variant', 'bare', 'rssBytes')),
      }
    }
    const cell = (c, key) =>
      Number.isFinite(ratios[c][key])
        ? `${fmt(ratios[c][key], 2)} (${fmt(spread[c][key][0], 2)}-${fmt(spread[c][key][1], 2)})`
        : '-'

    printTable(
      `Hot path (${loadGenerator()} -t1, ${rounds} interleaved rounds x ${durationS} s; medians)`,
      [
        'server',
        'conns',
        'req/s',
        'p50 us',
        'p99 us',
        'p99.9 us',
        'CPU us/req',
        'RSS MiB',
        'errors',
      ],
      Object.values(summary).map((s) => [
        s.target,
        s.connections,
        fmt(s.rps),
        fmt(s.p50Us),
        fmt(s.p99Us),
        fmt(s.p999Us),
        fmt(s.cpuUsPerRequest, 1),
        fmt(s.rssBytes / MiB, 1),
        s.errors,
      ]),
    )
    printTable(
      'Hot path ratios: median of the per-round ratios (min-max over rounds)',
      [
        'conns',
        'info/bare req/s',
        'info/bare CPU/req',
        'info/bare RSS',
        'trace/info req/s',
        'trace/info CPU/req',
      ],
      connectionsList.map((c) => [
        c,
        cell(c, 'infoVsBareRps'),
        cell(c, 'infoVsBareCpu'),
        cell(c, 'infoVsBareRss'),
        cell(c, 'traceVsInfoRps'),
        cell(c, 'traceVsInfoCpu'),
      ]),
    )
    if (variant) {
      printTable(
        `Variant (${VARIANT.label}) against the same bare server, same rounds`,
        ['conns', 'variant/bare req/s', 'variant/bare CPU/req', 'variant/bare RSS'],
        connectionsList.map((c) => [
          c,
          cell(c, 'variantVsBareRps'),
          cell(c, 'variantVsBareCpu'),
          cell(c, 'variantVsBareRss'),
        ]),
      )
    }

    const s32 = summary['info@32']
    const targetsMet = [
      {
        target: 'hot path throughput >= 0.90 x bare (32 conns)',
        value: ratios[32].infoVsBareRps,
        ok: ratios[32].infoVsBareRps >= 0.9,
      },
      {
        target: 'hot path throughput >= 0.90 x bare (128 conns)',
        value: ratios[128].infoVsBareRps,
        ok: ratios[128].infoVsBareRps >= 0.9,
      },
      {
        target: 'hot path CPU/request within 15 % of bare (32 conns)',
        value: ratios[32].infoVsBareCpu,
        ok: ratios[32].infoVsBareCpu <= 1.15,
      },
      {
        target: 'hot path CPU/request within 15 % of bare (128 conns)',
        value: ratios[128].infoVsBareCpu,
        ok: ratios[128].infoVsBareCpu <= 1.15,
      },
      { target: 'hot path p99 <= 2 ms at 32 conns (us)', value: s32.p99Us, ok: s32.p99Us <= 2000 },
      {
        target: 'bare node:http p99 at 32 conns, same machine (us; report only)',
        value: summary['bare@32'].p99Us,
        ok: true,
        verdict: 'info',
      },
      {
        target: '-v trace CPU/request within 25 % of -v info (32 conns)',
        value: ratios[32].traceVsInfoCpu,
        ok: ratios[32].traceVsInfoCpu <= 1.25,
      },
      {
        target: '-v trace throughput within 25 % of -v info (32 conns)',
        value: ratios[32].traceVsInfoRps,
        ok: ratios[32].traceVsInfoRps >= 0.75,
      },
      {
        target:
          'hot path RSS / bare under load, one entry (32 conns; report only: memory has the target)',
        value: ratios[32].infoVsBareRss,
        ok: true,
        verdict: 'info',
      },
      {
        target: 'hot path: no errors, every answer 200',
        value: Object.values(summary).reduce((s, x) => s + x.errors, 0),
        ok: Object.values(summary).every((x) => x.errors === 0),
      },
    ]
    for (const t of targetsMet) t.verdict ??= verdict(t.ok)
    const file = writeResults('hot-path', {
      generator: loadGenerator(),
      rounds,
      durationS,
      summary,
      ratios,
      ratioRanges: spread,
      targets: targetsMet,
      runs,
    })
    console.log(`results: ${file}`)
    return targetsMet
  } finally {
    for (const s of servers) await s.stop()
    await mock.stop()
  }
}
