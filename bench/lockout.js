// The lockout scenario of issue 24, for real: EKS Auth (the mock) throttles above 100 calls/s; one
// pod sends forged tokens, a new one per request, as fast as wrk can over 100 connections for 2 s
// (tens of thousands); half a second in, a new pod starts with the real SDK provider (fromHttp and
// its retries, bench/lib/sdk-pods.js) from an address of its own. Measured: how long until the new
// pod holds credentials (target: within 2 s), what reached EKS Auth, and the queue 5 s later.
// Twice: with the agent's defaults, and with --client-miss-rate 0, where only the fair queue
// (round-robin across pods, calls dropped once nobody waits) stands between the flood and the pod.
// A fresh agent and mock for every run.

import { setTimeout as sleep } from 'node:timers/promises'
import { metricSamples, runJsonChild } from './lib/clients.js'
import { runLoad } from './lib/load.js'
import { fmt, median, printTable, verdict, writeResults } from './lib/report.js'
import { metricValue, startAgent, startMock } from './lib/servers.js'

const NEW_POD_ADDRESS = '127.0.0.9'

async function one(fx, variant) {
  const mock = await startMock(fx, { throttleQps: 100 })
  const agent = await startAgent(fx, mock.url, { args: variant.args })
  try {
    const [real, newPod] = await fx.mint(2, 'lockout')
    const forgedPrefix = real.slice(0, real.lastIndexOf('.') + 1)
    const flood = runLoad({ url: agent.url, forgedPrefix, connections: 100, durationS: 2 })
    await sleep(500)
    const pod = await runJsonChild(
      fx.dir,
      'sdk-pods.js',
      {
        url: agent.url,
        pods: [{ token: newPod, localAddress: NEW_POD_ADDRESS }],
        deadlineMs: 30_000,
      },
      60_000,
    )
    const load = await flood
    await sleep(5000)
    const text = await agent.metrics()
    const stats = await mock.stats()
    return {
      variant: variant.key,
      servedMs: pod.served === 1 ? pod.firstServedMs : NaN,
      podAttempts: pod.attemptsTotal,
      podStatuses: pod.responses.byStatus,
      floodRequests: load.requests,
      upstreamCalls: stats.requests,
      limited: Object.values(metricSamples(text, 'pod_identity_requests_limited_total')).reduce(
        (a, b) => a + b,
        0,
      ),
      dropped: metricValue(text, 'pod_identity_upstream_calls_dropped_total'),
      queuedAfter5s: metricValue(text, 'pod_identity_upstream_queue_length{api="eks-auth"}'),
    }
  } finally {
    await Promise.all([agent.stop(), mock.stop()])
  }
}

export async function lockout({ fx, full }) {
  const rounds = full ? 3 : 1
  const variants = [
    { key: 'defaults', label: 'defaults', args: [] },
    {
      key: 'no-miss-rate',
      label: '--client-miss-rate 0 (the fair queue alone)',
      args: ['--client-miss-rate', '0'],
    },
  ]
  const runs = []
  for (let r = 0; r < rounds; r++) for (const v of variants) runs.push(await one(fx, v))
  const m = (key, f) => median(runs.filter((x) => x.variant === key).map((x) => x[f]))
  printTable(
    'Lockout: forged-token flood from one pod against EKS Auth throttling at 100/s, a new pod with fromHttp (medians)',
    [
      'agent',
      'new pod served ms',
      'flood requests',
      'EKS Auth calls',
      'limited',
      'dropped',
      'queued 5 s later',
    ],
    variants.map((v) => [
      v.label,
      fmt(m(v.key, 'servedMs')),
      fmt(m(v.key, 'floodRequests')),
      fmt(m(v.key, 'upstreamCalls')),
      fmt(m(v.key, 'limited')),
      fmt(m(v.key, 'dropped')),
      fmt(m(v.key, 'queuedAfter5s')),
    ]),
  )
  const targets = variants.map((v) => {
    const worst = Math.max(...runs.filter((x) => x.variant === v.key).map((x) => x.servedMs))
    return {
      target: `lockout (${v.key}): a new pod is served within 2 s of starting (worst of ${rounds}, ms)`,
      value: worst,
      verdict: verdict(worst <= 2000),
    }
  })
  writeResults('lockout', { runs, targets })
  return targets
}
