// What a GC observer costs a server under load: V8's --trace-gc-nvp figures per scavenge (bytes
// that survived it, bytes promoted into the old space) and the RSS at the end of a -c32 load,
// for the bare node:http baseline, the baseline with one GC observer (what prom-client's
// nodejs_gc_duration_seconds adds), the baseline with Node's GC entries built without their
// deprecated accessors (bench/lib/preload/gc-entries-plain.js, through Node's internals), and
// the agent at its defaults. Rounds interleave the four. Medians over rounds.
// Usage (after npm run build): node bench/gc-survivors.js [rounds=3] [seconds=5]

import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runLoad } from './lib/load.js'
import { MiB, fmt, median, printTable, writeResults } from './lib/report.js'
import {
  ROOT,
  createFixtures,
  fetchCredentials,
  scratchDir,
  startAgent,
  startBare,
  startMock,
} from './lib/servers.js'

const rounds = Number(process.argv[2] ?? 3)
const seconds = Number(process.argv[3] ?? 5)
if (!(rounds >= 1 && seconds >= 1)) {
  console.error('usage: node bench/gc-survivors.js [rounds>=1] [seconds>=1]')
  process.exit(2)
}
const preload = (name) => join(ROOT, 'bench', 'lib', 'preload', name)
const TRACE = ['--trace-gc-nvp']

/**
 * Scavenge lines of --trace-gc-nvp output (`gc=s key=value ...` up to Node 24, a JSON object
 * with "gc":"s" from Node 26): count and mean survived / promoted bytes.
 */
function scavengeStats(text) {
  const lines = text.split('\n').filter((l) => l.includes('gc=s ') || l.includes('"gc":"s"'))
  const mean = (key) => {
    const re = new RegExp(`\\b${key}"?[=:](\\d+)`)
    const values = lines.map((l) => Number(re.exec(l)?.[1]))
    return values.reduce((s, v) => s + v, 0) / values.length
  }
  return {
    scavenges: lines.length,
    survived: mean('new_space_survived'),
    promoted: mean('promoted'),
  }
}

const fx = await createFixtures(scratchDir())
const [token] = await fx.mint(1, 'gc-survivors')
const mock = await startMock(fx)
const bodyFile = join(fx.dir, 'body.json')

/** A fresh agent at its defaults, its token cached by one request. */
async function startWarmAgent() {
  const agent = await startAgent(fx, mock.url, { nodeArgs: TRACE })
  const answer = await fetchCredentials(agent, token)
  if (answer.status !== 200) throw new Error(`agent answered ${answer.status}: ${answer.body}`)
  return { agent, body: answer.body }
}
{
  // The bare server sends the agent's exact hit bytes.
  const { agent, body } = await startWarmAgent()
  writeFileSync(bodyFile, body)
  await agent.stop()
}

const bareVariant = (nodeArgs) => async () => {
  const bare = await startBare(bodyFile, { nodeArgs: [...TRACE, ...nodeArgs] })
  let out = ''
  bare.child.stdout.on('data', (c) => (out += c))
  return { server: bare, output: () => out, stop: () => bare.stop() }
}
// A fresh process per round for every server, so that each has had the same time under load.
const VARIANTS = {
  bare: bareVariant([]),
  'bare + GC observer': bareVariant(['--import', preload('gc-observer.js')]),
  'bare + GC observer, entries without DEP0152 accessors': bareVariant([
    '--expose-internals',
    '--no-warnings',
    '--import',
    preload('gc-entries-plain.js'),
  ]),
  'agent (-v info, metrics on)': async () => {
    const { agent } = await startWarmAgent()
    return {
      server: agent,
      output: () => readFileSync(agent.logFile, 'utf8'),
      stop: () => agent.stop(),
    }
  },
}

const runs = Object.fromEntries(Object.keys(VARIANTS).map((k) => [k, []]))
try {
  for (let round = 0; round < rounds; round++) {
    for (const [name, start] of Object.entries(VARIANTS)) {
      const v = await start()
      try {
        const { url, pid } = v.server
        await runLoad({ url, token, connections: 32, durationS: 1, watchPids: [pid] })
        const mark = v.output().length
        const load = await runLoad({
          url,
          token,
          connections: 32,
          durationS: seconds,
          watchPids: [pid],
        })
        const stats = scavengeStats(v.output().slice(mark))
        runs[name].push({
          ...stats,
          scavengesPerKReq: (stats.scavenges / load.requests) * 1000,
          rss: load.rss[pid],
          requests: load.requests,
        })
      } finally {
        await v.stop()
      }
    }
  }
} finally {
  await mock.stop()
}

const rows = Object.entries(runs).map(([name, list]) => {
  const m = (f) => median(list.map((r) => r[f]))
  return [
    name,
    fmt(m('scavengesPerKReq'), 2),
    fmt(m('survived') / 1024, 1),
    fmt(m('promoted') / 1024, 1),
    fmt(m('rss') / MiB, 1),
  ]
})
printTable(
  `Per scavenge under ${seconds} s of -c32 load (V8 --trace-gc-nvp; medians of ${rounds} rounds)`,
  ['server', 'scavenges per 1k requests', 'survived KB', 'promoted KB', `RSS at ${seconds} s, MiB`],
  rows,
)
writeResults('gc-survivors', { rounds, seconds, runs })
process.exit(0)
