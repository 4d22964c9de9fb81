// The shipped binary as users run it: flags, one-line errors, probes, metrics, SIGTERM, dev.

import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fromHttp } from '@aws-sdk/credential-provider-http'
import type { MockEksAuth } from '../../src/mock/mock-eks-auth.js'
import type { TokenIssuer } from '../../src/mock/token-issuer.js'
import { SERVER_FLAGS, envName } from '../../src/cli/server-flags.js'
import { NODE_KEY, NODE_KEY_ENV, rawGet, startProcessMock } from '../helpers/harness.js'
import { loopbackServerArgs, runCli, startCli } from '../helpers/spawn.js'
import { until } from '../helpers/until.js'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const ENV = { AWS_REGION: 'us-west-2' }

describe('server flags', () => {
  const bad: Array<[string, string[], NodeJS.ProcessEnv, RegExp]> = [
    ['missing --cluster-name', [], ENV, /--cluster-name is required/],
    [
      'bad --port',
      ['-c', 'c1', '--port', 'eighty'],
      ENV,
      /--port: "eighty" is not a port; expected an integer 0-65535/,
    ],
    ['port out of range', ['-c', 'c1', '-p', '70000'], ENV, /--port: "70000" is not a port/],
    [
      'bad --verbosity',
      ['-c', 'c1', '-v', 'loud'],
      ENV,
      /--verbosity: "loud" is not a log level; expected one of trace, debug, info, warn, error/,
    ],
    ['unknown flag', ['-c', 'c1', '--bogus'], ENV, /unknown flag --bogus/],
    ['flag without value', ['-c', 'c1', '--port'], ENV, /flag --port needs a value/],
    ['no region', ['-c', 'c1'], {}, /no AWS region: set AWS_REGION/],
    [
      'bad value from an env var names the variable',
      ['-c', 'c1'],
      { ...ENV, POD_IDENTITY_AGENT_PORT: 'abc' },
      /server: POD_IDENTITY_AGENT_PORT \(--port\): "abc" is not a port/,
    ],
    [
      'wildcard bind host',
      ['-c', 'c1', '-b', '0.0.0.0'],
      ENV,
      /--bind-hosts: "0.0.0.0" is a wildcard address/,
    ],
    [
      'bad bind host',
      ['-c', 'c1', '-b', 'example.com'],
      ENV,
      /--bind-hosts: "example.com" is not an IP address/,
    ],
    [
      'bad retention',
      ['-c', 'c1', '--max-credential-retention-before-renewal', '3 hours'],
      ENV,
      /--max-credential-retention-before-renewal: "3 hours" is not a duration/,
    ],
    [
      'bad qps',
      ['-c', 'c1', '--max-service-qps', '0'],
      ENV,
      /--max-service-qps: "0" is not a rate/,
    ],
    [
      'bad cluster name',
      ['-c', 'my cluster'],
      ENV,
      /--cluster-name: "my cluster" is not a valid EKS cluster name/,
    ],
    [
      'bad endpoint',
      ['-c', 'c1', '--endpoint', 'ftp://x'],
      ENV,
      /--endpoint: "ftp:\/\/x" must be an http:\/\/ or https:\/\/ URL/,
    ],
    [
      'bad env var',
      [],
      { ...ENV, POD_IDENTITY_AGENT_CLUSTER_NAME: 'c1', POD_IDENTITY_AGENT_PORT: 'x' },
      /POD_IDENTITY_AGENT_PORT \(--port\): "x" is not a port/,
    ],
  ]
  for (const [name, args, env, re] of bad) {
    it(`${name}: exits 2 with one clear line`, async () => {
      const r = await runCli(['server', ...args], env)
      expect(r.code).toBe(2)
      expect(r.stdout).toBe('')
      const lines = r.stderr.trimEnd().split('\n')
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^pod-identity-agent: server: /)
      expect(lines[0]).toMatch(re)
    })
  }

  it('--help documents every flag and its env var', async () => {
    const r = await runCli(['server', '--help'])
    expect(r.code).toBe(0)
    for (const f of SERVER_FLAGS) {
      expect(r.stdout).toContain(`--${f.name}`)
      expect(r.stdout).toContain(envName(f.name))
    }
  })

  it('version, top-level help and an unknown command', async () => {
    expect((await runCli(['version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
    const help = await runCli(['--help'])
    expect(help.code).toBe(0)
    for (const c of [
      'server',
      'initialize',
      'mock-eks-auth',
      'mock-sts',
      'token',
      'dev',
      'version',
    ])
      expect(help.stdout).toContain(c)
    const unknown = await runCli(['serve'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr.trim()).toBe(
      'pod-identity-agent: unknown command "serve"; expected one of server, initialize, mock-eks-auth, mock-sts, token, dev, version (see pod-identity-agent --help)',
    )
  })
})

function get(
  port: number,
  path: string,
  host = '127.0.0.1',
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host, port, path, agent: false }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
      .on('error', reject)
      .end()
  })
}

describe('server process', () => {
  let mock: MockEksAuth
  let issuer: TokenIssuer
  let mockUrl: string
  let dir: string
  beforeAll(async () => {
    ;({ mock, issuer, url: mockUrl } = await startProcessMock('proc-cluster'))
    dir = await mkdtemp(join(tmpdir(), 'pia-cli-'))
  })
  afterAll(async () => {
    await mock.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('signs with node credentials from the default chain, serves probes and metrics, drains on SIGTERM and exits 0', async () => {
    const agent = startCli(loopbackServerArgs('proc-cluster', mockUrl), NODE_KEY_ENV)
    try {
      const started = await agent.waitFor((l) => l.event === 'started')
      const port = Number(
        String((started.listeners as string[])[0])
          .split(':')
          .pop(),
      )
      const probePort = started.probePort as number
      const metricsPort = started.metricsPort as number

      expect(await get(probePort, '/healthz', 'localhost')).toEqual({ status: 200, body: 'ok\n' })
      expect(await get(probePort, '/readyz', 'localhost')).toEqual({ status: 200, body: 'ok\n' })
      expect((await get(metricsPort, '/readyz')).status).toBe(200)

      const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
      const file = join(dir, 'token')
      await writeFile(file, token)
      const url = `http://127.0.0.1:${port}/v1/credentials`
      const creds = await fromHttp({
        awsContainerCredentialsFullUri: url,
        awsContainerAuthorizationTokenFile: file,
        maxRetries: 0,
      })()
      expect(creds.accessKeyId).toMatch(/^ASIA/)
      expect(mock.stats.accessKeyIds).toContain(NODE_KEY.accessKeyId)

      const metrics = await get(metricsPort, '/metrics')
      expect(metrics.status).toBe(200)
      expect(metrics.body).toContain('pod_identity_http_response{code="200"} 1')
      expect(metrics.body).toContain('pod_identity_cache_state{state="miss"} 1')
      expect(metrics.body).toContain(
        'pod_identity_upstream_requests_total{api="eks-auth",outcome="success"} 1',
      )
      expect(metrics.body).toContain('process_cpu_seconds_total')
      // the readiness self-checks were not counted as pod traffic
      expect(metrics.body).not.toContain('pod_identity_http_response{code="404"}')

      // SIGTERM while a request waits on a slow upstream: it completes, then the process exits 0.
      mock.setFaults({ latencyMs: 600 })
      const slowToken = await issuer.mint({ namespace: 'team-b', serviceAccount: 'worker' })
      const callsBefore = mock.stats.requests
      const inflight = rawGet(url, { host: `127.0.0.1:${port}`, authorization: slowToken })
      await until(() => mock.stats.requests > callsBefore, 'the request to reach EKS Auth')
      agent.child.kill('SIGTERM')
      const res = await inflight
      expect(res.status).toBe(200)
      const done = await agent.exited
      expect(done.code).toBe(0)
      expect(done.stderr).toBe('')
      for (const secret of [
        token,
        slowToken,
        creds.secretAccessKey,
        NODE_KEY.secretAccessKey,
        NODE_KEY.sessionToken,
      ]) {
        expect(done.stdout).not.toContain(secret)
      }
      await expect(get(port, '/')).rejects.toThrow()
    } finally {
      mock.setFaults({ latencyMs: 0 })
      agent.child.kill('SIGKILL')
    }
  })

  it('skips a bind host it cannot bind and serves on the others', async () => {
    const agent = startCli(
      [
        'server',
        '-c',
        'proc-cluster',
        '-p',
        '0',
        '-b',
        '127.0.0.1',
        '-b',
        '192.0.2.1',
        '--probe-port',
        '0',
        '--metrics-port',
        '0',
        '--endpoint',
        mockUrl,
      ],
      { AWS_REGION: 'us-west-2', AWS_ACCESS_KEY_ID: 'AKIAX', AWS_SECRET_ACCESS_KEY: 'x' },
    )
    try {
      const failed = await agent.waitFor((l) => l.event === 'bind_failed')
      expect(failed.host).toBe('192.0.2.1')
      expect(failed.code).toBe('EADDRNOTAVAIL')
      const started = await agent.waitFor((l) => l.event === 'started')
      expect(started.listeners).toHaveLength(1)
      expect((await get(started.probePort as number, '/readyz', 'localhost')).status).toBe(200)
    } finally {
      agent.child.kill('SIGTERM')
      expect((await agent.exited).code).toBe(0)
    }
  })

  it('exits 1 with one line when no bind host can be bound', async () => {
    const r = await runCli(
      [
        'server',
        '-c',
        'c1',
        '-p',
        '0',
        '-b',
        '192.0.2.1',
        '--probe-port',
        '0',
        '--metrics-port',
        '0',
      ],
      ENV,
    )
    expect(r.code).toBe(1)
    const errLines = r.stderr.trim().split('\n')
    expect(errLines).toEqual([
      'pod-identity-agent: could not bind any credential listener: 192.0.2.1:0 (EADDRNOTAVAIL)',
    ])
  })
})

describe('dev', () => {
  it('dev --once: mock, token, agent, and credentials through the real SDK', async () => {
    const r = await runCli(['dev', '--once'], {}, 30_000)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/AccessKeyId +ASIA[A-Z2-7]{16}/)
    expect(r.stdout).toMatch(
      /export AWS_CONTAINER_CREDENTIALS_FULL_URI=http:\/\/127\.0\.0\.1:\d+\/v1\/credentials/,
    )
    expect(r.stdout).toMatch(/export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=\S+/)
    expect(r.stdout).toContain('not shown')
    expect(r.stdout).toContain('issued by        EKS Auth (mock)')
  })

  it('dev --once --credential-source sts: the same through the mock STS and an associations file', async () => {
    const r = await runCli(['dev', '--once', '--credential-source', 'sts'], {}, 30_000)
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(
      /mock STS +http:\/\/127\.0\.0\.1:\d+ +\(associations file \S+associations\.json\)/,
    )
    expect(r.stdout).toContain('(credential source sts)')
    expect(r.stdout).toMatch(/AccessKeyId +ASIA[A-Z2-7]{16}/)
    expect(r.stdout).toContain('issued by        STS (mock)')
  })
})
