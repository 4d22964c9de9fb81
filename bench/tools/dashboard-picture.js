// Draws the README's picture of the dashboard from a real run: the agent and the mock EKS Auth
// (from dist/), Debian's prometheus scraping the agent every second, and about a minute of pods:
// some polling their credentials, a burst of new pods, bad tokens, an EKS Auth outage and its
// end. Four of the dashboard's panels are then queried from Prometheus's HTTP API with their own
// expressions (manifests/components/monitoring/dashboard.json) and drawn as one SVG.
//
// Usage: npm run build && node bench/tools/dashboard-picture.js [docs/dashboard.svg]
// Needs the `prometheus` binary (apt-get install prometheus).

import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { dirname, join } from 'node:path'
import { freePort, httpRequest, sleep } from '../lib/procs.js'
import { ROOT, createFixtures, scratchDir, startAgent, startMock } from '../lib/servers.js'

const OUT = process.argv[2] ?? join(ROOT, 'docs', 'dashboard.svg')
const DASHBOARD = JSON.parse(
  readFileSync(join(ROOT, 'manifests/components/monitoring/dashboard.json'), 'utf8'),
)
/** The panels drawn, by title, and which of their queries. */
const PANELS = [
  'Requests by status code',
  'Request latency by outcome (p50, p99)',
  'Upstream calls by API and outcome',
  'Cache entries and tokens',
]

/** One pod: its own source address and connection, asking with its token. */
function pod(agent, token, index) {
  const localAddress = `127.0.${20 + Math.floor(index / 250)}.${1 + (index % 250)}`
  const httpAgent = new Agent({ keepAlive: true, maxSockets: 1, localAddress })
  return () =>
    new Promise((resolve) => {
      const req = request(
        agent.url,
        { agent: httpAgent, headers: { host: agent.hostHeader, authorization: token } },
        (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode))
        },
      )
      req.on('error', () => resolve(0))
      req.end()
    })
}

/** Pods that ask every `everyMs` until `stop()`. */
function polling(asks, everyMs) {
  let running = true
  const loops = asks.map(async (ask) => {
    while (running) {
      await ask()
      await sleep(everyMs)
    }
  })
  return async () => {
    running = false
    await Promise.all(loops)
  }
}

async function scenario(agent, mock, fx) {
  const tokens = await fx.mint(240, 'pic')
  let next = 0
  const newPods = (n) => tokens.slice(next, (next += n)).map((t, i) => pod(agent, t, next - n + i))
  const steady = polling(newPods(30), 100)
  await sleep(12_000)
  await Promise.all(newPods(120).map((ask) => ask())) // a Job of 120 pods starts
  const burst = polling(newPods(0), 100)
  await sleep(10_000)
  await mock.faults({ errorRate: 1, errorStatus: 503 }) // EKS Auth fails
  const junk = Array.from({ length: 5 }, (_, i) => pod(agent, `not-a-token-${i}`, 200 + i))
  const bad = polling(junk, 200)
  const arriving = newPods(40)
  for (const ask of arriving) {
    void ask()
    await sleep(350)
  }
  await mock.faults({ errorRate: 0 }) // EKS Auth is back
  await bad()
  await Promise.all(arriving.map((ask) => ask()))
  await sleep(15_000)
  await steady()
  await burst()
}

function expressions(title) {
  const panel = DASHBOARD.panels.find((p) => p.title === title)
  return panel.targets.map((t) => ({
    expr: t.expr.replaceAll('$__rate_interval', '5s').replaceAll('"$instance"', '".*"'),
    legend: t.legendFormat,
    unit: panel.fieldConfig.defaults.unit,
  }))
}

async function queryRange(prom, expr, start, end) {
  const u = `${prom}/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${start}&end=${end}&step=1`
  const res = await httpRequest(u, { timeoutMs: 10_000 })
  const body = JSON.parse(res.body)
  if (body.status !== 'success') throw new Error(`${expr}: ${JSON.stringify(body)}`)
  return body.data.result
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf']
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')

function fmt(v, unit) {
  if (unit === 's')
    return v >= 1 ? `${v.toFixed(1)} s` : `${(v * 1000).toFixed(v < 0.01 ? 2 : 0)} ms`
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2).replace(/\.?0+$/, '')
}

/**
 * One panel as SVG at (x, y): lines over time (broken where a series has no value), a y axis
 * (logarithmic for durations: hits take microseconds, misses milliseconds), a legend.
 */
function drawPanel(title, lines, unit, start, end, x, y, w, h) {
  const pad = { l: 58, r: 10, t: 26, b: 70 }
  const pw = w - pad.l - pad.r
  const ph = h - pad.t - pad.b
  const log = unit === 's'
  const values = lines.flatMap((l) => l.points.map((p) => p[1])).filter((v) => !log || v > 0)
  const max = Math.max(1e-9, ...values)
  const min = log ? Math.min(...values) : 0
  const lo = log ? Math.log10(min) : 0
  const hi = log ? Math.log10(max) : max
  const scale = (v) => (log ? Math.log10(Math.max(v, min)) : v)
  const px = (t) => x + pad.l + ((t - start) / (end - start)) * pw
  const py = (v) => y + pad.t + ph - ((scale(v) - lo) / (hi - lo || 1)) * ph
  const out = [
    `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="#fff" stroke="#ddd"/>`,
    `<text x="${x + 10}" y="${y + 17}" font-size="13" font-weight="bold">${esc(title)}</text>`,
  ]
  for (let i = 0; i <= 4; i++) {
    const v = log ? 10 ** (lo + ((hi - lo) * i) / 4) : (max * i) / 4
    out.push(
      `<line x1="${x + pad.l}" x2="${x + w - pad.r}" y1="${py(v)}" y2="${py(v)}" stroke="#eee"/>`,
      `<text x="${x + pad.l - 4}" y="${py(v) + 4}" font-size="10" text-anchor="end">${fmt(v, unit)}</text>`,
    )
  }
  for (let s = 0; s <= end - start; s += 15) {
    out.push(
      `<text x="${px(start + s)}" y="${y + pad.t + ph + 13}" font-size="10" text-anchor="middle">${s} s</text>`,
    )
  }
  lines.forEach((l, i) => {
    const colour = COLOURS[i % COLOURS.length]
    const d = l.points.map(
      (p, j) =>
        `${j === 0 || p[0] - l.points[j - 1][0] > 2 ? 'M' : 'L'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`,
    )
    if (d.length > 0)
      out.push(`<path d="${d.join('')}" fill="none" stroke="${colour}" stroke-width="1.6"/>`)
    const columns = lines.some((m) => m.name.length > 24) ? 2 : 3
    const lx = x + pad.l + (i % columns) * Math.floor(pw / columns)
    const ly = y + pad.t + ph + 30 + Math.floor(i / columns) * 14
    out.push(
      `<rect x="${lx}" y="${ly - 8}" width="10" height="3" fill="${colour}"/>`,
      `<text x="${lx + 14}" y="${ly - 4}" font-size="10">${esc(l.name)}</text>`,
    )
  })
  return out.join('\n')
}

async function main() {
  const fx = await createFixtures(scratchDir())
  const mock = await startMock(fx, { latencyMs: 20 })
  const agent = await startAgent(fx, mock.url)
  const promPort = await freePort()
  const config = join(fx.dir, 'prometheus.yml')
  writeFileSync(
    config,
    `global: { scrape_interval: 1s }\nscrape_configs:\n  - job_name: pod-identity-agent\n    static_configs: [{ targets: ['127.0.0.1:${agent.metricsPort}'] }]\n`,
  )
  const prometheus = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(fx.dir, 'tsdb')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    { stdio: 'ignore' },
  )
  const prom = `http://127.0.0.1:${promPort}`
  try {
    await sleep(3000)
    const start = Math.floor(Date.now() / 1000)
    await scenario(agent, mock, fx)
    await sleep(6000)
    const end = Math.floor(Date.now() / 1000)
    const W = 560
    const H = 300
    const parts = []
    for (const [i, title] of PANELS.entries()) {
      const lines = []
      let unit = 'short'
      for (const q of expressions(title)) {
        unit = q.unit
        for (const series of await queryRange(prom, q.expr, start, end)) {
          const name = q.legend.replace(/\{\{(\w+)\}\}/g, (_, k) => series.metric[k] ?? '')
          const points = series.values
            .map(([t, v]) => [Number(t), Number(v)])
            .filter(([, v]) => Number.isFinite(v))
          if (points.some(([, v]) => v > 0)) lines.push({ name, points })
        }
      }
      parts.push(
        drawPanel(
          title,
          lines.slice(0, 9),
          unit,
          start,
          end,
          (i % 2) * (W + 10),
          Math.floor(i / 2) * (H + 10),
          W,
          H,
        ),
      )
    }
    const svg = [
      `<svg xmlns="http://www.w3.org/2000/svg" width="${2 * W + 10}" height="${2 * H + 10}" font-family="sans-serif">`,
      `<rect width="100%" height="100%" fill="#f7f7f7"/>`,
      ...parts,
      '</svg>',
      '',
    ].join('\n')
    mkdirSync(dirname(OUT), { recursive: true })
    writeFileSync(OUT, svg)
    console.log(`wrote ${OUT} (${end - start} s of the agent under load, 4 panels)`)
  } finally {
    prometheus.kill('SIGTERM')
    await agent.stop()
    await mock.stop()
  }
}

await main()
