// Benchmark entry: `npm run bench` (short), `BENCH_FULL=1 npm run bench` (longer),
// `node bench/run.js hot|herd|boot|memory|cache ...` for some workloads only (after npm run build).
// Prints tables, writes bench/results/<workload>.json and bench/results/summary.json.

import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { hotPath } from './hot-path.js'
import { bootHerd, sameTokenHerd } from './herd.js'
import { cacheMicro } from './cache.js'
import { memoryAndStartup } from './memory.js'
import { mixedLoad } from './mixed.js'
import { neighboursUnderFlood } from './neighbours.js'
import { lockout } from './lockout.js'
import { shutdownUnderLoad } from './shutdown.js'
import { cacheChurn } from './churn.js'
import { fallbackBoot } from './fallback.js'
import { jobBurst } from './burst.js'
import { loadGenerator } from './lib/load.js'
import {
  AGENT_IMAGE_ENV,
  AGENT_IMAGE_NODE_ARGS,
  ROOT,
  VARIANT,
  VERIFY,
  createFixtures,
  scratchDir,
} from './lib/servers.js'
import { fmt, printTable, writeResults } from './lib/report.js'

const WORKLOADS = {
  hot: hotPath,
  herd: sameTokenHerd,
  boot: bootHerd,
  mixed: mixedLoad,
  neighbours: neighboursUnderFlood,
  lockout,
  shutdown: shutdownUnderLoad,
  fallback: fallbackBoot,
  burst: jobBurst,
  memory: memoryAndStartup,
  churn: cacheChurn,
  cache: cacheMicro,
}

const USAGE = `usage: node bench/run.js [${Object.keys(WORKLOADS).join('|')}|all] ...
  hot     hot path: warm token, 32/128 connections, agent -v info / -v trace vs bare node:http
  herd    same-token herd: 1000 concurrent first requests for one token, upstream 100 ms
  boot    node boot herd: 250 pods at once, upstream 50 ms; then a mock throttling at 20/s,
          250 pods with the real SDK provider (its retries, the app asking again)
  mixed   250 warm pods polling (~1 s each) while 250 new pods arrive at once: warm-pod latency
  lockout forged-token flood from one pod against EKS Auth throttling at 100/s: how soon a new
          pod with the real SDK is served (defaults, and with --client-miss-rate 0)
  fallback  250 pods boot while EKS Auth refuses connections, and while it does not answer, with
          --credential-source eks-auth-then-sts: time until all are served, STS calls per pod
  burst   job burst: 50, 250 and 1000 pods of one service account at once (own token and address
          each), tokens verified on the node, credentials per pod and per association: upstream
          calls, time until all are served
  shutdown  SIGTERM under wrk -c64 (back-to-back keep-alive requests): requests that reached the
          agent and failed, time to exit
  neighbours  one pod floods over 2000 connections (hits, bogus, forged tokens, forged against a
          throttling EKS Auth): two neighbours' latency, new connection and keep-alive
  memory  RSS idle / with 2000 entries / under load against bare node:http holding the same
          entries, bytes per entry, start-up to /readyz
  churn   RSS while 5000 tokens cycle through the 2000-entry cache, against the steady state
  cache   credential cache in process, ns/op: hit (vs a plain Map.get), miss, coalesced miss,
          renewal sweep; V8 heap bytes per entry (npm run bench:cache)
env: BENCH_FULL=1 longer runs; BENCH_LOADGEN=autocannon to skip wrk; BENCH_IMAGE_ENV=0 runs
     the agent without the Dockerfile's ENV and ENTRYPOINT node flags; BENCH_AGENT_NODE_ARGS
     node flags for the agent; BENCH_VARIANT_MAIN / BENCH_VARIANT_NODE_ARGS a second agent
     (another build, other flags) measured beside it in hot and memory; BENCH_VERIFY=1 every
     agent verifies tokens on the node (--token-jwks, --token-issuer), BENCH_SHARE=per-pod or
     per-association adds --share-credentials (bench/README.md)`

async function main() {
  const args = process.argv.slice(2)
  if (args.includes('-h') || args.includes('--help')) {
    console.log(USAGE)
    return 0
  }
  const full = process.env.BENCH_FULL === '1'
  const names = args.length === 0 || args.includes('all') ? Object.keys(WORKLOADS) : args
  for (const n of names) {
    if (!(n in WORKLOADS)) {
      console.error(`unknown workload "${n}"\n${USAGE}`)
      return 2
    }
  }
  if (!existsSync(join(ROOT, 'dist', 'main.js'))) {
    console.error('dist/main.js is missing: run `npm run build` (npm run bench does it)')
    return 2
  }
  console.log(
    `pod-identity-agent benchmarks (${full ? 'full' : 'short'}; load generator ${loadGenerator()}; ` +
      `${names.join(', ')})`,
  )
  const agentEnv = [
    ...Object.entries(AGENT_IMAGE_ENV).map(([k, v]) => `${k}=${v}`),
    ...AGENT_IMAGE_NODE_ARGS,
  ]
  console.log(
    `node ${process.version}; the agent as the Dockerfile runs it: ` +
      (agentEnv.length > 0 ? agentEnv.join(' ') : 'defaults (BENCH_IMAGE_ENV=0)'),
  )
  if (VARIANT) console.log(`variant measured beside the agent: ${VARIANT.label}`)
  if (VERIFY) console.log(`every agent: ${VERIFY.label}`)
  const t0 = performance.now()
  const fx = await createFixtures(scratchDir())
  const all = []
  for (const n of names) {
    const t = performance.now()
    const targets = await WORKLOADS[n]({ fx, full })
    for (const x of targets) all.push({ workload: n, ...x })
    console.log(`(${n}: ${fmt((performance.now() - t) / 1000, 1)} s)`)
  }
  printTable(
    'Targets',
    ['target', 'measured', 'verdict'],
    all.map((t) => [t.target, fmt(t.value, Number.isInteger(t.value) ? 0 : 3), t.verdict]),
  )
  writeResults(
    args.length === 0 || args.includes('all') ? 'summary' : `summary-${names.join('-')}`,
    {
      node: process.version,
      agentEnv: AGENT_IMAGE_ENV,
      agentNodeArgs: AGENT_IMAGE_NODE_ARGS,
      variant: VARIANT,
      verify: VERIFY,
      targets: all,
    },
  )
  if (!full && names.includes('hot')) {
    console.log(
      '\nShort run: on a shared 2-core machine the hot-path ratios move by 20 % or more from one run to' +
        ' the next (see the min-max column); judge them on BENCH_FULL=1.',
    )
  }
  console.log(`\ntotal ${fmt((performance.now() - t0) / 1000, 1)} s`)
  return 0
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err)
    process.exit(1)
  },
)
