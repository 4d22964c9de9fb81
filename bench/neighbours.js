// Neighbours under a one-pod flood (the agent's per-source limits and turn share). One pod
// floods the agent from one source address over 2000 connections (wrk), while two neighbours ask
// for their credentials every 20 ms from addresses of their own (bench/lib/neighbour-client.js):
// one on a new connection per request, as an SDK's provider does, one on a keep-alive connection.
// The floods:
// - hits: the flooder's own cached token;
// - bogus: a token that is no JWT (refused locally, 400);
// - forged: a real token's header and claims with a forged signature, new for each request (each
//   would start an EKS Auth call; the per-source miss rate answers most with 429);
// - forged, throttled: the same against a mock EKS Auth that throttles above 100 calls/s.
// Each flood is measured against the neighbours' own latency without a flood in the same run;
// the target: p99 within 2 x the quiet p99 plus one event-loop round of the flood's
// answers (16 per turn, turn-share.ts, at the agent's CPU per request during that flood). For
// context, the hit flood also goes to a bare node:http server: what Node alone does.

import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { fetchCredentials, startAgent, startBare, startMock } from './lib/servers.js'
import { loadGenerator, runLoad } from './lib/load.js'
import { runJsonChild } from './lib/clients.js'
import { fmt, median, printTable, verdict, writeResults } from './lib/report.js'

const FLOOD_CONNECTIONS = 2000
/** Answers per source per event-loop turn (src/server/credential-handler.ts). */
const ANSWERS_PER_TURN = 16
const NEIGHBOUR = { intervalMs: 20, freshAddress: '127.0.0.3', keepAliveAddress: '127.0.0.2' }

/** The neighbours' latencies over durationS, starting delayMs from now, against target. */
function neighbours(fx, target, token, { delayMs, durationS }) {
  return runJsonChild(
    fx.dir,
    'neighbour-client.js',
    {
      port: target.port,
      hostHeader: target.hostHeader ?? `127.0.0.1:${target.port}`,
      token,
      delayMs,
      durationS,
      ...NEIGHBOUR,
    },
    delayMs + durationS * 1000 + 60_000,
  )
}

/** A flood of durationS from 127.0.0.1 and the neighbours meanwhile (after a 2 s head start). */
async function flooded(fx, target, neighbourToken, load, durationS) {
  const [flood, nb] = await Promise.all([
    runLoad({ url: target.url, connections: FLOOD_CONNECTIONS, durationS, ...load }),
    neighbours(fx, target, neighbourToken, { delayMs: 2000, durationS: durationS - 3 }),
  ])
  return { flood, nb }
}

export async function neighboursUnderFlood({ fx, full }) {
  if (loadGenerator() !== 'wrk') {
    console.log('\nneighbours: skipped (the floods need wrk: apt-get install wrk)')
    return []
  }
  const rounds = full ? 3 : 1
  const durationS = full ? 12 : 8
  const mock = await startMock(fx)
  const agent = await startAgent(fx, mock.url)
  const [flooder, neighbour] = await fx.mint(2, 'flood')
  for (const t of [flooder, neighbour]) {
    const r = await fetchCredentials(agent, t)
    if (r.status !== 200) throw new Error(`warm-up: ${r.status} ${r.body}`)
  }
  const bodyFile = join(fx.dir, 'neighbours-body.json')
  writeFileSync(bodyFile, (await fetchCredentials(agent, flooder)).body)
  const bare = await startBare(bodyFile)
  const forgedPrefix = flooder.slice(0, flooder.lastIndexOf('.') + 1)
  const floods = [
    { key: 'hits', label: 'hits (own cached token)', load: { token: flooder } },
    { key: 'bogus', label: 'bogus tokens (no JWT)', load: { token: 'not-a-jwt' } },
    { key: 'forged', label: 'forged tokens', load: { forgedPrefix } },
    {
      key: 'throttled',
      label: 'forged tokens, EKS Auth throttling at 100/s',
      load: { forgedPrefix },
      faults: { throttleQps: 100 },
    },
  ]
  const runs = []
  try {
    for (let r = 0; r < rounds; r++) {
      const quiet = await neighbours(fx, agent, neighbour, { delayMs: 0, durationS: durationS - 3 })
      runs.push({ round: r, flood: 'quiet', ...pick(quiet) })
      for (const f of floods) {
        if (f.faults) await mock.faults(f.faults)
        const { flood, nb } = await flooded(
          fx,
          agent,
          neighbour,
          { ...f.load, watchPids: [agent.pid] },
          durationS,
        )
        if (f.faults) await mock.faults({ throttleQps: 0 })
        const cpuUs = flood.cpuUsPerRequest[agent.pid]
        runs.push({ round: r, flood: f.key, ...pick(nb), floodRps: flood.rps, cpuUs })
      }
      const quietBare = await neighbours(fx, bare, neighbour, {
        delayMs: 0,
        durationS: durationS - 3,
      })
      runs.push({ round: r, flood: 'bare-quiet', ...pick(quietBare) })
      const { flood, nb } = await flooded(fx, bare, neighbour, { token: flooder }, durationS)
      runs.push({ round: r, flood: 'bare-hits', ...pick(nb), floodRps: flood.rps })
    }
  } finally {
    await Promise.all([agent.stop(), bare.stop(), mock.stop()])
  }
  return report(runs, floods)
}

function pick(nb) {
  return {
    freshP50: nb.fresh.p50Ms,
    freshP99: nb.fresh.p99Ms,
    freshMax: nb.fresh.maxMs,
    freshN: nb.fresh.n,
    keepP50: nb.keepAlive.p50Ms,
    keepP99: nb.keepAlive.p99Ms,
    keepMax: nb.keepAlive.maxMs,
    errors: nb.fresh.errors + nb.keepAlive.errors,
  }
}

function report(runs, floods) {
  const m = (flood, f) => median(runs.filter((x) => x.flood === flood).map((x) => x[f]))
  const quiet = { fresh: m('quiet', 'freshP99'), keep: m('quiet', 'keepP99') }
  const rows = ['quiet', ...floods.map((f) => f.key), 'bare-quiet', 'bare-hits'].map((k) => [
    floods.find((f) => f.key === k)?.label ?? k,
    fmt(m(k, 'freshP50'), 1),
    fmt(m(k, 'freshP99'), 1),
    fmt(m(k, 'freshMax'), 1),
    fmt(m(k, 'keepP50'), 1),
    fmt(m(k, 'keepP99'), 1),
    fmt(m(k, 'keepMax'), 1),
    fmt(m(k, 'floodRps')),
    fmt(m(k, 'errors')),
  ])
  printTable(
    `Neighbours of a ${FLOOD_CONNECTIONS}-connection flood from one address (ms; medians of rounds)`,
    [
      'flood',
      'new conn p50',
      'p99',
      'max',
      'keep-alive p50',
      'p99',
      'max',
      'flood req/s',
      'errors',
    ],
    rows,
  )
  const targets = []
  for (const f of floods) {
    const roundMs = (ANSWERS_PER_TURN * m(f.key, 'cpuUs')) / 1000
    for (const [kind, field, q] of [
      ['new connection', 'freshP99', quiet.fresh],
      ['keep-alive', 'keepP99', quiet.keep],
    ]) {
      const p99 = m(f.key, field)
      const limit = 2 * q + roundMs
      targets.push({
        target: `neighbour (${kind}) p99 under a flood of ${f.key} / quiet p99 (limit ${fmt(limit / q, 2)}: 2 x quiet + one ${fmt(roundMs, 2)} ms round)`,
        value: p99 / q,
        verdict: verdict(p99 <= limit && m(f.key, 'errors') === 0),
      })
    }
  }
  targets.push({
    target:
      'bare node:http, new-connection neighbour p99 under the hit flood / quiet (report only)',
    value: m('bare-hits', 'freshP99') / m('bare-quiet', 'freshP99'),
    verdict: 'info',
  })
  writeResults('neighbours', { runs, quiet, targets })
  return targets
}
