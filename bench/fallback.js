// The fallback from EKS Auth to STS (--credential-source eks-auth-then-sts), for real: 250 pods
// boot at once (each its own token and source address, bench/lib/herd-client.js) against an agent
// whose EKS Auth is up (the baseline), refuses connections (a closed port), or does not answer
// (the mock with 5 s of latency); the mock STS answers. Reported: the time until every pod is
// served, errors, and the calls each upstream took per pod. A fresh agent and mocks per run.

import { podAddress, runHerdClient } from './lib/load.js'
import { freePort } from './lib/procs.js'
import { fmt, median, printTable, verdict, writeResults } from './lib/report.js'
import { startAgent, startMock, startMockSts } from './lib/servers.js'

const PODS = 250
const PODS_LABEL = `${PODS} pods booting at once, the mock STS answering`

const CASES = [
  { key: 'up', label: 'EKS Auth answering (baseline)', faults: {} },
  { key: 'refused', label: 'EKS Auth refusing connections', faults: undefined },
  { key: 'timeout', label: 'EKS Auth not answering (5 s)', faults: { latencyMs: 5000 } },
]

async function one(fx, c, tokens) {
  const sts = await startMockSts(fx)
  const eks = c.faults === undefined ? undefined : await startMock(fx, c.faults)
  const eksUrl = eks?.url ?? `http://127.0.0.1:${await freePort()}`
  const agent = await startAgent(fx, eksUrl, {
    args: [
      '--credential-source',
      'eks-auth-then-sts',
      '--associations-file',
      fx.associationsFile,
      '--sts-endpoint',
      sts.url,
    ],
  })
  try {
    const out = await runHerdClient(fx.dir, {
      port: agent.port,
      hostHeader: agent.hostHeader,
      mode: 'herd',
      timeoutMs: 10_000,
      requests: tokens.map((token, i) => ({ token, localAddress: podAddress(9, i) })),
    })
    const stsCalls = (await sts.stats()).requests
    const eksCalls = eks === undefined ? 0 : (await eks.stats()).requests
    return {
      case: c.key,
      completionMs: out.completionMs,
      errors: out.errors,
      statuses: out.statuses,
      stsCallsPerPod: stsCalls / PODS,
      eksCallsPerPod: eksCalls / PODS,
    }
  } finally {
    await Promise.all([agent.stop(), sts.stop(), eks?.stop()])
  }
}

export async function fallbackBoot({ fx, full }) {
  const rounds = full ? 3 : 1
  const runs = []
  for (let r = 0; r < rounds; r++) {
    for (const c of CASES) runs.push(await one(fx, c, await fx.mint(PODS, `fb-${c.key}-${r}`)))
  }
  const m = (key, f) => median(runs.filter((x) => x.case === key).map((x) => x[f]))
  printTable(
    `Fallback to STS: ${PODS_LABEL} (medians of ${rounds})`,
    ['EKS Auth', 'all served ms', 'errors', 'STS calls per pod', 'EKS Auth calls per pod'],
    CASES.map((c) => [
      c.label,
      fmt(m(c.key, 'completionMs')),
      fmt(m(c.key, 'errors')),
      fmt(m(c.key, 'stsCallsPerPod'), 2),
      fmt(m(c.key, 'eksCallsPerPod'), 2),
    ]),
  )
  const targets = CASES.filter((c) => c.key !== 'up').flatMap((c) => {
    const worst = Math.max(...runs.filter((x) => x.case === c.key).map((x) => x.completionMs))
    const errors = Math.max(...runs.filter((x) => x.case === c.key).map((x) => x.errors))
    return [
      {
        target: `fallback (${c.key}): ${PODS} pods all served, no errors (worst of ${rounds}, ms; report)`,
        value: worst,
        verdict: errors === 0 ? 'info' : verdict(false),
      },
      {
        target: `fallback (${c.key}): STS calls per pod served (median)`,
        value: m(c.key, 'stsCallsPerPod'),
        verdict: verdict(m(c.key, 'stsCallsPerPod') <= 1.2),
      },
    ]
  })
  writeResults('fallback', { runs, targets })
  return targets
}
