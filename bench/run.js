// Benchmark entry: `npm run bench` (short, < 2 min), `BENCH_FULL=1 npm run bench` (longer),
// `node bench/run.js hot|herd|boot|memory ...` for some workloads only (after npm run build).
// Prints tables, writes bench/results/<workload>.json and bench/results/summary.json.

import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { hotPath } from './hot-path.js'
import { instructionsPerHit } from './instructions.js'
import { bootHerd, sameTokenHerd } from './herd.js'
import { memoryAndStartup } from './memory.js'
import { mixedLoad } from './mixed.js'
import { loadGenerator } from './lib/load.js'
import { AGENT_IMAGE_ENV, ROOT, createFixtures, scratchDir } from './lib/servers.js'
import { fmt, printTable, writeResults } from './lib/report.js'

const WORKLOADS = {
  hot: hotPath,
  herd: sameTokenHerd,
  boot: bootHerd,
  mixed: mixedLoad,
  memory: memoryAndStartup,
  instructions: instructionsPerHit,
}

const USAGE = `usage: node bench/run.js [${Object.keys(WORKLOADS).join('|')}|all] ...
  hot     hot path: warm token, 32/128 connections, agent -v info / -v trace vs bare node:http
  herd    same-token herd: 1000 concurrent first requests for one token, upstream 100 ms
  boot    node boot herd: 250 pods at once, upstream 50 ms; then a mock throttling at 20/s,
          250 pods with the real SDK provider (its retries, the app asking again)
  mixed   250 warm pods polling (~1 s each) while 250 new pods arrive at once: warm-pod latency
  memory  RSS idle / with 2000 entries / under load, bytes per entry, start-up to /readyz
  instructions  instructions per hit under valgrind: agent -v info / -v trace vs bare node:http
          (not in the short run of all workloads; BENCH_FULL=1 or name it)
env: BENCH_FULL=1 longer runs; BENCH_LOADGEN=autocannon to skip wrk; BENCH_IMAGE_ENV=0 runs
     the agent without the Dockerfile's ENV (glibc malloc defaults)`

async function main() {
  const args = process.argv.slice(2)
  if (args.includes('-h') || args.includes('--help')) {
    console.log(USAGE)
    return 0
  }
  const full = process.env.BENCH_FULL === '1'
  // The short run (npm run bench, under 2 minutes) leaves out the valgrind workload (about 3
  // minutes on its own): name it, or use BENCH_FULL=1.
  const names =
    args.length === 0 || args.includes('all')
      ? Object.keys(WORKLOADS).filter((n) => full || n !== 'instructions')
      : args
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
  const agentEnv = Object.entries(AGENT_IMAGE_ENV).map(([k, v]) => `${k}=${v}`)
  console.log(
    `node ${process.version}; agent environment from the Dockerfile: ` +
      (agentEnv.length > 0 ? agentEnv.join(' ') : 'none (BENCH_IMAGE_ENV=0)'),
  )
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
