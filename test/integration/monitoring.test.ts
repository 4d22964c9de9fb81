// What an operator installs to watch the agent (manifests/components/monitoring): the alert rules
// checked and unit-tested by promtool, the PrometheusRule equal to the plain rules file, every
// series the rules and the dashboard name exported by the agent, and a real Prometheus (Debian's
// package, which .ci/run installs) scraping a real agent and answering queries over its HTTP API.

import { execFile, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { parse } from 'yaml'
import type { Harness } from '../helpers/harness.js'
import { rawGet, startHarness } from '../helpers/harness.js'
import { until } from '../helpers/until.js'

const run = promisify(execFile)
const DIR = fileURLToPath(new URL('../../manifests/components/monitoring/', import.meta.url))
const RULES = await readFile(join(DIR, 'alerts.rules.yaml'), 'utf8')
const DASHBOARD = await readFile(join(DIR, 'dashboard.json'), 'utf8')

async function hasCommand(name: string): Promise<boolean> {
  return run(name, ['--version']).then(
    () => true,
    () => false,
  )
}
const PROMTOOL = await hasCommand('promtool')
const PROMETHEUS = await hasCommand('prometheus')
if (!PROMTOOL || !PROMETHEUS) {
  console.warn(
    "monitoring tests that need Debian's prometheus package skipped: it is not installed (.ci/run installs it: apt-get install prometheus)",
  )
}

let h: Harness | undefined
let prometheus: ChildProcess | undefined
let scratch: string | undefined
afterEach(async () => {
  prometheus?.kill('SIGKILL')
  prometheus = undefined
  await h?.close()
  h = undefined
  if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
  scratch = undefined
})

/** Every metric family the expressions name: pod_identity_* and process_*, histogram suffixes cut. */
function seriesNamed(exprs: string[]): Set<string> {
  const names = new Set<string>()
  for (const e of exprs) {
    for (const m of e.matchAll(/\b((?:pod_identity|process)_[a-z_]+)\b/g)) {
      names.add((m[1] as string).replace(/_(bucket|count|sum)$/, ''))
    }
  }
  return names
}

function ruleExprs(): string[] {
  const doc = parse(RULES) as { groups: { rules: { expr: string }[] }[] }
  return doc.groups.flatMap((g) => g.rules.map((r) => r.expr))
}

function dashboardExprs(): string[] {
  const d = JSON.parse(DASHBOARD) as { panels: { targets?: { expr: string }[] }[] }
  return d.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

describe('alert rules and dashboard', () => {
  it('the PrometheusRule holds exactly the plain rules file', async () => {
    const rule = parse(await readFile(join(DIR, 'prometheusrule.yaml'), 'utf8')) as {
      spec: unknown
    }
    expect(rule.spec).toEqual({ groups: (parse(RULES) as { groups: unknown }).groups })
  })

  it('every alert has a summary, a description and a runbook section in the README', async () => {
    const readme = await readFile(
      fileURLToPath(new URL('../../README.md', import.meta.url)),
      'utf8',
    )
    const doc = parse(RULES) as {
      groups: { rules: { alert: string; annotations: Record<string, string> }[] }[]
    }
    const rules = doc.groups.flatMap((g) => g.rules)
    expect(rules.length).toBeGreaterThanOrEqual(9)
    for (const r of rules) {
      expect(r.annotations.summary, r.alert).toBeTruthy()
      expect(r.annotations.description, r.alert).toBeTruthy()
      const anchor = r.alert.toLowerCase()
      expect(r.annotations.runbook_url).toMatch(new RegExp(`#${anchor}$`))
      expect(readme, r.alert).toContain(`#### ${r.alert}`)
    }
  })

  it('names no series the agent does not export (rules and every dashboard panel)', async () => {
    h = await startHarness({ verify: true, deps: { processMetrics: true } })
    await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: await h.mint() })
    const text = await h.metricsText()
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]))
    const named = seriesNamed([...ruleExprs(), ...dashboardExprs()])
    expect(named.size).toBeGreaterThan(15)
    for (const name of named) expect(exported, name).toContain(name)
    // and the only other series they name is Prometheus's own `up`
    const others = [...ruleExprs(), ...dashboardExprs()]
      .flatMap((e) => [...e.matchAll(/\b([a-z_]+)\{/g)].map((m) => m[1] as string))
      .filter((n) => !n.startsWith('pod_identity_') && !n.startsWith('process_'))
    expect(new Set(others)).toEqual(new Set(['up']))
  })

  it.skipIf(!PROMTOOL)('promtool checks the rules and their unit tests pass', async () => {
    const check = await run('promtool', ['check', 'rules', join(DIR, 'alerts.rules.yaml')])
    expect(check.stdout).toContain('SUCCESS: 9 rules found')
    const tests = await run('promtool', ['test', 'rules', 'alerts.test.yaml'], { cwd: DIR })
    expect(tests.stdout).toContain('SUCCESS')
  })

  it.skipIf(!PROMTOOL)(
    'the unit tests can fail (the control): a rule that never fires',
    async () => {
      scratch = await mkdtemp(join(tmpdir(), 'pia-rules-'))
      await writeFile(join(scratch, 'alerts.rules.yaml'), RULES.replace('> 0.05', '> 5'))
      await writeFile(
        join(scratch, 'alerts.test.yaml'),
        await readFile(join(DIR, 'alerts.test.yaml'), 'utf8'),
      )
      const failed = await run('promtool', ['test', 'rules', 'alerts.test.yaml'], {
        cwd: scratch,
      }).then(
        () => undefined,
        (e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`,
      )
      expect(failed).toContain('alertname: PodIdentityAgentCredentialErrors')
    },
  )
})

describe('a real Prometheus scraping the agent', () => {
  it.skipIf(!PROMETHEUS)(
    'sees hits, refusals, an upstream failure, and answers a latency quantile',
    async () => {
      h = await startHarness({ config: { clientMissRate: 0 } })
      const metricsPort = h.agent.metricsServer.port
      scratch = await mkdtemp(join(tmpdir(), 'pia-prometheus-'))
      const config = join(scratch, 'prometheus.yml')
      await writeFile(
        config,
        [
          'global: { scrape_interval: 1s, evaluation_interval: 1s }',
          'scrape_configs:',
          '  - job_name: pod-identity-agent',
          `    static_configs: [{ targets: ['127.0.0.1:${metricsPort}'] }]`,
        ].join('\n'),
      )
      const port = await freePort()
      prometheus = spawn(
        'prometheus',
        [
          `--config.file=${config}`,
          `--storage.tsdb.path=${join(scratch, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
        ],
        { stdio: 'ignore' },
      )
      const api = `http://127.0.0.1:${port}/api/v1/query?query=`
      const query = async (
        q: string,
      ): Promise<{ metric: Record<string, string>; value: [number, string] }[]> => {
        const res = await fetch(api + encodeURIComponent(q)).catch(() => undefined)
        if (res?.ok !== true) return []
        const body = (await res.json()) as {
          data: { result: { metric: Record<string, string>; value: [number, string] }[] }
        }
        return body.data.result
      }
      const value = async (q: string): Promise<number | undefined> => {
        const r = await query(q)
        return r[0] === undefined ? undefined : Number(r[0].value[1])
      }

      // traffic once Prometheus has the agent's series (rate() needs samples before and after):
      // 1 miss and 5 hits; 3 refused tokens; then an upstream failure for a new token
      await until(async () => (await value('up{job="pod-identity-agent"}')) === 1, 'a first scrape')
      const host = `127.0.0.1:${h.port}`
      const token = await h.mint()
      for (let i = 0; i < 6; i++)
        expect((await rawGet(h.url, { host, authorization: token })).status).toBe(200)
      for (let i = 0; i < 3; i++)
        expect((await rawGet(h.url, { host, authorization: `junk-${i}` })).status).toBe(400)
      h.mock.setFaults({ errorRate: 1, errorStatus: 500 })
      expect(
        (await rawGet(h.url, { host, authorization: await h.mint({ podName: 'x' }) })).status,
      ).toBe(500)

      await until(
        async () =>
          (await value('pod_identity_http_response{code="200"}')) === 6 &&
          (await value('pod_identity_http_response{code="400"}')) === 3 &&
          (await value('pod_identity_http_response{code="500"}')) === 1,
        'Prometheus to scrape the answers',
      )
      const errors = await query('pod_identity_upstream_requests_total{outcome!="success"}')
      expect(errors.length).toBeGreaterThan(0)
      expect(errors.every((s) => s.metric.api === 'eks-auth')).toBe(true)
      expect(errors.reduce((n, s) => n + Number(s.value[1]), 0)).toBeGreaterThanOrEqual(1)
      expect(await value('pod_identity_upstream_requests_total{outcome="success"}')).toBe(1)
      // a rate needs hits between two scrapes: more hits now that the series is scraped
      for (let i = 0; i < 5; i++) await rawGet(h.url, { host, authorization: token })
      await until(async () => {
        const p99 = await value(
          'histogram_quantile(0.99, sum by (le) (rate(pod_identity_request_duration_seconds_bucket{outcome="hit"}[1m])))',
        )
        return p99 !== undefined && p99 > 0 && p99 < 1
      }, 'a hit latency quantile from Prometheus')
      expect(await value('pod_identity_cache_entries')).toBe(1)
    },
    60_000,
  )
})
