// Job burst: N pods of one service account start at once (a Job or a Deployment scaled up), each
// with its own token (own pod name and UID) and its own loopback source address, for N = 50, 250
// and 1000, against mock EKS Auth answering in 50 ms. Two settings, tokens verified on the node
// in both (--token-jwks, --token-issuer): sharing off (--share-credentials per-pod, the default:
// one upstream call per pod) and sharing on (per-association: every pod of the service account
// reads one entry, so the burst costs one call). Reported per (N, setting): upstream calls (the
// mock's /_mock/stats), the time from the first request to the last pod served, errors, and what
// the pods saw first (the agent answers 503 UpstreamThrottled to a pod whose call still waits in
// its upstream gate after 700 ms).
//
// The pods are fired by bench/lib/herd-client.js in `herd` mode (every connection opened first,
// then every request written in one loop; connectMs apart). A pod that gets no 200 asks again as
// the SDK's fromHttp does by default (1000 ms later, on a new connection, 4 attempts in all), so
// "all served" is when the last pod holds credentials; first answers other than 200 are counted.
// A fresh agent and mock per run; the agent's other flags are its defaults (--client-miss-rate
// is per source address: each pod has its own).

import { metricSamples } from './lib/clients.js'
import { podAddress, runHerdClient } from './lib/load.js'
import { cpuMicros } from './lib/procs.js'
import { fmt, median, printTable, verdict, writeResults } from './lib/report.js'
import { startAgent, startMock, verifyArgs } from './lib/servers.js'

const SIZES = [50, 250, 1000]
const LATENCY_MS = 50
const BLOCK = 11
/** fromHttp's defaults: maxRetries 3 (4 attempts), 1000 ms between attempts. */
const RETRY = { attempts: 4, delayMs: 1000 }

const SETTINGS = [
  { key: 'off', label: 'sharing off (per-pod)', share: undefined },
  { key: 'on', label: 'sharing on (per-association)', share: 'per-association' },
]

/** Sum of a Prometheus counter's samples whose labels match re (all samples when re is omitted). */
function metricSum(text, name, re) {
  return Object.entries(metricSamples(text, name))
    .filter(([labels]) => re === undefined || re.test(labels))
    .reduce((sum, [, v]) => sum + v, 0)
}

async function one(fx, pods, setting, tokens) {
  const mock = await startMock(fx, { latencyMs: LATENCY_MS })
  let agent
  try {
    agent = await startAgent(fx, mock.url, { args: verifyArgs(fx, setting.share) })
    await mock.reset()
    const cpu0 = [cpuMicros(agent.pid), cpuMicros(mock.pid)]
    const out = await runHerdClient(fx.dir, {
      mode: 'herd',
      port: agent.port,
      hostHeader: agent.hostHeader,
      timeoutMs: 30_000,
      retry: RETRY,
      requests: tokens.map((token, i) => ({ token, localAddress: podAddress(BLOCK, i) })),
    })
    const agentCpuMs = (cpuMicros(agent.pid) - cpu0[0]) / 1000
    const mockCpuMs = (cpuMicros(mock.pid) - cpu0[1]) / 1000
    const stats = await mock.stats()
    const metrics = await agent.metrics()
    return {
      pods,
      setting: setting.key,
      upstreamCalls: stats.requests,
      upstream: stats.byOutcome,
      completionMs: out.completionMs,
      firstAnswerMs: out.firstAnswerMs,
      connectMs: out.connectMs,
      sendSpanMs: out.sendSpanMs,
      p50Ms: out.p50Ms,
      p99Ms: out.p99Ms,
      errors: out.errors,
      statuses: out.statuses,
      firstStatuses: out.firstStatuses,
      firstNon200: pods - (out.firstStatuses['200'] ?? 0),
      retriedPods: out.retriedPods,
      attemptsTotal: out.attemptsTotal,
      reasons: out.reasons,
      verifiedAccepted: metricSum(metrics, 'pod_identity_local_validation_total', /accepted/),
      verifiedOther: metricSum(metrics, 'pod_identity_local_validation_total', /^(?!.*accepted)/),
      queueRejections: metricSum(metrics, 'pod_identity_upstream_queue_rejections_total'),
      limited: metricSum(metrics, 'pod_identity_requests_limited_total'),
      sharedSaved: metricSum(metrics, 'pod_identity_upstream_calls_saved_total', /shared/),
      agentCpuMs,
      mockCpuMs,
    }
  } finally {
    await agent?.stop()
    await mock.stop()
  }
}

export async function jobBurst({ fx, full }) {
  const rounds = full ? 3 : 1
  const runs = []
  for (let r = 0; r < rounds; r++) {
    for (const pods of SIZES) {
      // Alternate which setting goes first, round by round.
      const order = r % 2 === 0 ? SETTINGS : [...SETTINGS].reverse()
      for (const s of order) {
        const tokens = await fx.mint(pods, `burst-${pods}-${s.key}-${r}`)
        const run = await one(fx, pods, s, tokens)
        runs.push({ round: r, ...run })
        console.log(
          `  burst ${pods} pods, ${s.label}: ${run.upstreamCalls} calls, all served ` +
            `${fmt(run.completionMs)} ms, ${run.errors} errors, first answers ${JSON.stringify(run.firstStatuses)}`,
        )
      }
    }
  }
  const of = (pods, key) => runs.filter((x) => x.pods === pods && x.setting === key)
  const m = (pods, key, f) => median(of(pods, key).map((x) => x[f]))
  const rows = SIZES.flatMap((pods) =>
    SETTINGS.map((s) => {
      const rs = of(pods, s.key)
      const calls = rs.map((x) => x.upstreamCalls)
      return [
        String(pods),
        s.label,
        `${fmt(m(pods, s.key, 'upstreamCalls'))} (${Math.min(...calls)}-${Math.max(...calls)})`,
        fmt(m(pods, s.key, 'completionMs')),
        fmt(m(pods, s.key, 'firstAnswerMs'), 1),
        fmt(m(pods, s.key, 'p50Ms')),
        fmt(m(pods, s.key, 'p99Ms')),
        `${fmt(m(pods, s.key, 'errors'))} (max ${Math.max(...rs.map((x) => x.errors))})`,
        fmt(m(pods, s.key, 'firstNon200')),
        fmt(m(pods, s.key, 'attemptsTotal')),
        fmt(m(pods, s.key, 'connectMs')),
        fmt(m(pods, s.key, 'agentCpuMs')),
        fmt(m(pods, s.key, 'mockCpuMs')),
      ]
    }),
  )
  printTable(
    `Job burst: N pods of one service account at once (own token, pod UID and source address each), ` +
      `tokens verified on the node, upstream ${LATENCY_MS} ms, a pod retrying as fromHttp does ` +
      `(${RETRY.attempts} attempts ${RETRY.delayMs} ms apart); median of ${rounds}`,
    [
      'pods',
      'setting',
      'upstream calls',
      'all served ms',
      'first ms',
      'p50 ms',
      'p99 ms',
      'errors',
      'first answer not 200',
      'requests',
      'connect ms',
      'agent CPU ms',
      'mock CPU ms',
    ],
    rows,
  )
  printTable(
    'Job burst: what the agent counted (median of runs)',
    [
      'pods',
      'setting',
      'tokens verified (accepted)',
      'verification refusals',
      '503 call still queued',
      'refused by a limit',
      'calls saved (shared)',
    ],
    SIZES.flatMap((pods) =>
      SETTINGS.map((s) => [
        String(pods),
        s.label,
        fmt(m(pods, s.key, 'verifiedAccepted')),
        fmt(m(pods, s.key, 'verifiedOther')),
        fmt(m(pods, s.key, 'queueRejections')),
        fmt(m(pods, s.key, 'limited')),
        fmt(m(pods, s.key, 'sharedSaved')),
      ]),
    ),
  )
  const targets = SIZES.flatMap((pods) => [
    {
      target: `burst ${pods} pods, sharing on: exactly 1 upstream call (every run)`,
      value: Math.max(...of(pods, 'on').map((x) => x.upstreamCalls)),
      verdict: verdict(of(pods, 'on').every((x) => x.upstreamCalls === 1)),
    },
    ...SETTINGS.map((s) => ({
      target: `burst ${pods} pods, ${s.label}: all served, no errors (median ms; report)`,
      value: m(pods, s.key, 'completionMs'),
      verdict: of(pods, s.key).every((x) => x.errors === 0) ? 'info' : verdict(false),
    })),
  ])
  console.log(
    `results: ${writeResults('burst', { latencyMs: LATENCY_MS, retry: RETRY, runs, targets })}`,
  )
  return targets
}
