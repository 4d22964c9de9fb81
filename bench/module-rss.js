// What each module the agent loads costs in memory. A fresh node process (--expose-gc) loads the
// agent's modules one step at a time, in the agent's order (static imports at start, then what
// the preload after start imports, then the first upstream call's objects); after each step it
// runs a full GC and reads VmRSS / RssAnon / RssFile (/proc/self/status) and the V8 heap. A second
// table loads each module alone in its own fresh process, against an empty one. Medians of
// `runs` processes. Usage (after npm run build): node bench/module-rss.js [runs]

import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createServer } from './lib/node-http.js'
import { ROOT } from './lib/servers.js'
import { MiB, fmt, median, printTable } from './lib/report.js'

const SELF = fileURLToPath(import.meta.url)
const dist = (p) => join(ROOT, 'dist', p)

/** Steps, in the order the agent runs them; each is a function run in the child. */
const STEPS = {
  pino: async () => {
    const { pino } = await import('pino')
    globalThis.keep.push(pino({ level: 'info' }, pino.destination({ dest: 1, sync: false })))
  },
  'prom-client': () => import('prom-client'),
  'prom-client default metrics': async () => {
    const { Registry, collectDefaultMetrics } = await import('prom-client')
    const registry = new Registry()
    collectDefaultMetrics({ register: registry })
    globalThis.keep.push(registry, await registry.metrics())
  },
  'lru-cache': () => import('lru-cache'),
  'dist/agent.js (agent code)': () => import(dist('agent.js')),
  // What the EKS Auth client loads: undici's EnvHttpProxyAgent and request API on their own
  // (src/upstream/undici-parts.ts), its llhttp WebAssembly compiled with Liftoff only.
  'undici parts': async () => {
    const { loadUndiciParts } = await import(dist('upstream/undici-parts.js'))
    globalThis.keep.push(await loadUndiciParts())
  },
  'undici: agent + one request (llhttp wasm)': async () => {
    const { compileWasmWithLiftoffOnly } = await import(dist('util/v8-memory.js'))
    compileWasmWithLiftoffOnly()
    const { loadUndiciParts } = await import(dist('upstream/undici-parts.js'))
    const { EnvHttpProxyAgent } = await loadUndiciParts()
    const server = createServer((_q, s) => s.end('{}'))
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    const dispatcher = new EnvHttpProxyAgent({})
    const origin = `http://127.0.0.1:${server.address().port}`
    const r = await dispatcher.request({ origin, path: '/', method: 'GET' })
    await r.body.text()
    globalThis.keep.push(dispatcher)
    server.close()
    server.closeAllConnections()
  },
  // For comparison (not in the agent since undici-parts.ts): undici's index, which also makes
  // Node load its own bundled undici.
  "undici's index (not loaded by the agent)": () => import('undici'),
  '@smithy/signature-v4 + hash-node': () =>
    Promise.all([import('@smithy/signature-v4'), import('@smithy/hash-node')]),
  '@aws-sdk/credential-provider-node': () => import('@aws-sdk/credential-provider-node'),
  'default chain resolved (env credentials)': async () => {
    const { defaultProvider } = await import('@aws-sdk/credential-provider-node')
    const provider = defaultProvider()
    await provider()
    globalThis.keep.push(provider)
  },
}
const INDEX = "undici's index (not loaded by the agent)"
/** Cumulative: the agent's steps, in its order. */
const CUMULATIVE = Object.keys(STEPS).filter((n) => n !== INDEX)
/** Standalone: each module alone against an empty process. */
const ALONE = [
  'pino',
  'prom-client default metrics',
  'lru-cache',
  'undici: agent + one request (llhttp wasm)',
  INDEX,
  '@smithy/signature-v4 + hash-node',
  'default chain resolved (env credentials)',
]

function memory() {
  const status = readFileSync('/proc/self/status', 'utf8')
  const kb = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024
  const m = process.memoryUsage()
  return {
    rss: kb('VmRSS'),
    anon: kb('RssAnon'),
    file: kb('RssFile'),
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
  }
}

async function settle() {
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    globalThis.gc()
  }
}

async function child(names) {
  globalThis.keep = []
  const out = []
  await settle()
  out.push({ step: 'node (empty)', ...memory() })
  for (const name of names) {
    await STEPS[name]()
    await settle()
    out.push({ step: name, ...memory() })
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  process.exit(0)
}

function runChild(names) {
  const out = execFileSync(process.execPath, ['--expose-gc', SELF, '--child', ...names], {
    encoding: 'utf8',
    env: {
      ...process.env,
      AWS_REGION: 'us-west-2',
      AWS_ACCESS_KEY_ID: 'AKIDBENCHEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'bench-secret-not-real',
    },
  })
  return JSON.parse(out.trim().split('\n').pop())
}

const row = (name, list, prev) => {
  const m = (f) => median(list.map((x) => x[f]))
  const mb = (v) => fmt(v / MiB, 1)
  return [
    name,
    mb(m('rss')),
    prev ? `+${mb(m('rss') - prev.rss)}` : '',
    mb(m('anon')),
    mb(m('file')),
    mb(m('heapUsed')),
    mb(m('heapTotal')),
    mb(m('external')),
  ]
}

async function main() {
  const runs = Number(process.argv[2] ?? 3)
  const headers = [
    'step',
    'RSS MiB',
    'delta',
    'anon',
    'file',
    'heap used',
    'heap total',
    'external',
  ]
  const names = CUMULATIVE
  const seq = Array.from({ length: runs }, () => runChild(names))
  const rows = []
  let prev
  for (let i = 0; i <= names.length; i++) {
    const list = seq.map((r) => r[i])
    rows.push(row(list[0].step, list, prev))
    prev = { rss: median(list.map((x) => x.rss)) }
  }
  printTable(`Cumulative, in the agent's order (median of ${runs} processes)`, headers, rows)

  const alone = ALONE.map((name) => Array.from({ length: runs }, () => runChild([name])))
  const empty = alone.flatMap((r) => r.map((x) => x[0]))
  const base = { rss: median(empty.map((x) => x.rss)) }
  printTable(
    `Each alone in a fresh process (delta against the empty process; median of ${runs})`,
    headers,
    [
      row('node (empty)', empty),
      ...alone.map((r, i) =>
        row(
          ALONE[i],
          r.map((x) => x[1]),
          base,
        ),
      ),
    ],
  )
}

if (process.argv[2] === '--child') {
  await child(process.argv.slice(3))
} else {
  await main()
}
