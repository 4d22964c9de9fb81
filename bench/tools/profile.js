// Question: where does a cache hit (or a miss) spend its CPU? Runs the agent (or the bare baseline) under
// `node --cpu-prof` with a warm token and wrk/autocannon load at 32 connections, then prints the
// top self-time functions and the inclusive time of project code from the .cpuprofile (written to
// bench/results/cpuprofile-<target>/, ignored by git; the previous one there is replaced). The
// profile covers the whole process, start-up included.
// `miss` profiles the miss path instead: herds of 250 distinct pods (each its own token and
// source address) against mock EKS Auth at 50 ms, one herd per second of `seconds`.
// Usage (after npm run build): node bench/tools/profile.js [info|trace|bare|miss] [seconds]

import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { podAddress, runHerdClient, runLoad } from '../lib/load.js'
import {
  ROOT,
  createFixtures,
  fetchCredentials,
  scratchDir,
  startAgent,
  startBare,
  startMock,
} from '../lib/servers.js'
import { fmt, printTable } from '../lib/report.js'

const target = process.argv[2] ?? 'info'
const seconds = Number(process.argv[3] ?? 5)
if (!['info', 'trace', 'bare', 'miss'].includes(target) || !(seconds > 0 && seconds <= 600)) {
  console.error('usage: node bench/tools/profile.js [info|trace|bare|miss] [seconds 1..600]')
  process.exit(2)
}
const outDir = join(ROOT, 'bench', 'results', `cpuprofile-${target}`)
rmSync(outDir, { recursive: true, force: true })
mkdirSync(outDir, { recursive: true })

const fx = await createFixtures(scratchDir())
const [token] = await fx.mint(1, 'profile')
const mock = await startMock(fx, target === 'miss' ? { latencyMs: 50 } : {})
const profiled = ['--cpu-prof', '--cpu-prof-dir', outDir]
let agent
let server
try {
  agent = await startAgent(fx, mock.url, {
    verbosity: target === 'bare' || target === 'miss' ? 'info' : target,
    nodeArgs: target === 'bare' ? [] : profiled,
  })
  const first = await fetchCredentials(agent, token)
  if (first.status !== 200) throw new Error(`warm-up: ${first.status} ${first.body}`)
  server = agent
  if (target === 'bare') {
    const bodyFile = join(fx.dir, 'hit-body.json')
    writeFileSync(bodyFile, first.body)
    server = await startBare(bodyFile, { nodeArgs: profiled })
  }
  if (target === 'miss') {
    const herds = Math.ceil(seconds)
    const tokens = await fx.mint(250 * herds, 'profile-miss')
    for (let h = 0; h < herds; h++) {
      const out = await runHerdClient(fx.dir, {
        mode: 'herd',
        port: agent.port,
        hostHeader: agent.hostHeader,
        timeoutMs: 10_000,
        requests: tokens.slice(h * 250, (h + 1) * 250).map((t, i) => ({
          token: t,
          localAddress: podAddress(9, i),
        })),
      })
      console.log(`herd ${h + 1}: ${JSON.stringify(out).slice(0, 200)}`)
    }
  }
  if (target !== 'miss') await runLoad({ url: server.url, token, connections: 32, durationS: 1 })
  const r =
    target === 'miss'
      ? undefined
      : await runLoad({
          url: server.url,
          token,
          connections: 32,
          durationS: seconds,
          watchPids: [server.pid],
        })
  if (r !== undefined) {
    console.log(
      `${fmt(r.rps)} req/s, ${fmt(r.cpuUsPerRequest[server.pid], 1)} us CPU/request (profiler on)`,
    )
  }
} finally {
  if (server !== agent) await server?.stop()
  await agent?.stop()
  await mock.stop()
}

const file = readdirSync(outDir).find((f) => f.endsWith('.cpuprofile'))
if (!file) throw new Error(`no .cpuprofile in ${outDir}`)
const profile = JSON.parse(readFileSync(join(outDir, file), 'utf8'))
const label = (cf) => {
  const where = cf.url
    ? `${cf.url.replace(/^file:\/\/.*?\/(dist|node_modules|bench)\//, '$1/')}:${cf.lineNumber + 1}`
    : ''
  return `${cf.functionName || '(anonymous)'} ${where}`.trim()
}
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const selfTicks = new Map()
for (const id of profile.samples) selfTicks.set(id, (selfTicks.get(id) ?? 0) + 1)
const total = profile.samples.length
const byFunction = new Map()
for (const [id, ticks] of selfTicks) {
  const key = label(byId.get(id).callFrame)
  byFunction.set(key, (byFunction.get(key) ?? 0) + ticks)
}
// Inclusive time of functions from the project (dist/, node_modules/, bench/): what a request
// spends in code that a bare node:http server does not run.
const parent = new Map()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const inclusive = new Map()
for (const id of profile.samples) {
  const seen = new Set()
  for (let n = id; n !== undefined; n = parent.get(n)) {
    const cf = byId.get(n).callFrame
    if (!/\/(dist|node_modules|bench)\//.test(cf.url)) continue
    const key = label(cf)
    if (seen.has(key)) continue
    seen.add(key)
    inclusive.set(key, (inclusive.get(key) ?? 0) + 1)
  }
}
const top = [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, 30)
printTable(
  `Top self time, ${target === 'bare' ? 'bare node:http' : target === 'miss' ? 'agent, herds of 250 misses' : `agent -v ${target}`} (${total} samples; ${join(outDir, file)})`,
  ['function', 'self %'],
  top.map(([k, t]) => [k.slice(0, 110), fmt((100 * t) / total, 1)]),
)
printTable(
  'Top inclusive time of project code (dist/, node_modules/, bench/)',
  ['function', 'incl. %'],
  [...inclusive]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 25)
    .map(([k, t]) => [k.slice(0, 110), fmt((100 * t) / total, 1)]),
)
process.exit(0)
