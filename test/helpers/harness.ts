// Integration harness: the real mock EKS Auth and the real agent on loopback port 0, a token
// issuer, token files, and every log line the agent writes (at trace level, for leak checks).

import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { fromHttp } from '@aws-sdk/credential-provider-http'
import type { AgentDeps, RunningAgent } from '../../src/agent.js'
import { startAgent } from '../../src/agent.js'
import type { ServerConfig } from '../../src/config/server-config.js'
import type { Association } from '../../src/associations/associations.js'
import type { MockEksAuthOptions } from '../../src/mock/mock-eks-auth.js'
import { MockEksAuth } from '../../src/mock/mock-eks-auth.js'
import type { MockStsOptions } from '../../src/mock/mock-sts.js'
import { MockSts } from '../../src/mock/mock-sts.js'
import type { MintOptions } from '../../src/mock/token-issuer.js'
import { DEFAULT_ISSUER, TokenIssuer } from '../../src/mock/token-issuer.js'
import { staticNodeCredentials } from '../../src/node-credentials/default-chain.js'
import { createLogger } from '../../src/util/logger.js'
import { JwksServer } from './jwks-server.js'

export const NODE_KEY = {
  accessKeyId: 'AKIAHARNESSNODE00001',
  secretAccessKey: 'harnessNodeSecretKey/0123456789abcdefghijk',
  sessionToken: 'harnessNodeSessionToken0123456789',
}

/** Environment of an agent process that signs with NODE_KEY (the default chain's env provider). */
export const NODE_KEY_ENV = {
  AWS_REGION: 'us-west-2',
  AWS_ACCESS_KEY_ID: NODE_KEY.accessKeyId,
  AWS_SECRET_ACCESS_KEY: NODE_KEY.secretAccessKey,
  AWS_SESSION_TOKEN: NODE_KEY.sessionToken,
}

export const DEFAULT_ASSOCIATIONS: Association[] = [
  { namespace: 'default', serviceAccount: 'app', roleArn: 'arn:aws:iam::111122223333:role/App' },
  {
    namespace: 'team-b',
    serviceAccount: 'worker',
    roleArn: 'arn:aws:iam::444455556666:role/Worker',
  },
]

export interface HarnessOptions {
  config?: Partial<ServerConfig>
  mock?: Partial<MockEksAuthOptions>
  deps?: Partial<AgentDeps>
  /** Start the mock? (false: the agent points at a closed port). Default true. */
  startMock?: boolean
  /**
   * Also start a mock STS with the same associations and keys, write the associations file, and
   * point the agent's STS source at them (the agent uses them once config.credentialSource says).
   */
  sts?: Partial<MockStsOptions> | boolean
  /**
   * Verify tokens on the node: serve the issuer's key set over HTTP and point --token-jwks and
   * --token-issuer at it (config.shareCredentials says how entries are shared).
   */
  verify?: boolean
  /** The issuer the harness mints with (default a fresh RS256 key). */
  issuer?: TokenIssuer
}

export interface Harness {
  mock: MockEksAuth
  /** The mock STS, when the harness started one. */
  sts: MockSts | undefined
  /** The issuer's key set the agent verifies tokens with, when the harness serves one. */
  jwks: JwksServer | undefined
  /** The associations file the agent reads, when the harness wrote one. */
  associationsFile: string | undefined
  issuer: TokenIssuer
  agent: RunningAgent
  /** http://127.0.0.1:PORT/v1/credentials */
  url: string
  port: number
  /** Every log line the agent wrote. */
  logs: string[]
  /** Every secret the harness saw (tokens minted, credentials answered): for leak checks. */
  secrets: Set<string>
  mint(opts?: Partial<MintOptions>): Promise<string>
  /** Write a token to a fresh file; returns its path. */
  tokenFile(token: string): Promise<string>
  /** Fetch through the real SDK provider (fromHttp), no retries unless asked. */
  sdkFetch(
    tokenFile: string,
    opts?: { maxRetries?: number; timeout?: number },
  ): ReturnType<ReturnType<typeof fromHttp>>
  metricsText(): Promise<string>
  close(): Promise<void>
}

export function baseConfig(over: Partial<ServerConfig> = {}): ServerConfig {
  return {
    clusterName: 'test-cluster',
    port: 0,
    bindHosts: ['127.0.0.1'],
    probePort: 0,
    metricsAddress: '127.0.0.1',
    metricsPort: 0,
    endpoint: undefined,
    region: 'us-west-2',
    maxCacheSize: 2000,
    maxCredentialRetentionMs: 3 * 3_600_000,
    maxServiceQps: 3,
    rotateCredentials: false,
    verbosity: 'trace',
    negativeCacheTtlMs: 5000,
    clientMissRate: 10,
    clientMaxConnections: 256,
    maxRequestRate: 0,
    credentialSource: 'eks-auth',
    associationsFile: undefined,
    stsEndpoint: undefined,
    stsDurationSeconds: 3600,
    tokenJwks: undefined,
    tokenIssuer: undefined,
    tokenAudience: 'pods.eks.amazonaws.com',
    shareCredentials: 'per-pod',
    ...over,
  }
}

export async function startHarness(o: HarnessOptions = {}): Promise<Harness> {
  const issuer = o.issuer ?? (await TokenIssuer.generate())
  const clock = o.deps?.clock
  const mock = new MockEksAuth({
    clusterName: 'test-cluster',
    associations: DEFAULT_ASSOCIATIONS,
    jwks: issuer.publicJwks(),
    nodeCredentials: [
      { accessKeyId: NODE_KEY.accessKeyId, secretAccessKey: NODE_KEY.secretAccessKey },
    ],
    // EKS Auth and the node share time: a clock the test drives drives both.
    ...(clock !== undefined ? { now: () => clock.now() } : {}),
    ...o.mock,
  })
  const mockUrl = o.startMock === false ? 'http://127.0.0.1:9' : await mock.start()
  const dir = await mkdtemp(join(tmpdir(), 'pia-test-'))
  let sts: MockSts | undefined
  let associationsFile: string | undefined
  const stsConfig: Partial<ServerConfig> = {}
  if (o.sts !== undefined && o.sts !== false) {
    sts = new MockSts({
      associations: DEFAULT_ASSOCIATIONS,
      jwks: issuer.publicJwks(),
      ...(clock !== undefined ? { now: () => clock.now() } : {}),
      ...(o.sts === true ? {} : o.sts),
    })
    associationsFile = join(dir, 'associations.json')
    await writeFile(associationsFile, JSON.stringify({ associations: DEFAULT_ASSOCIATIONS }))
    stsConfig.associationsFile = associationsFile
    stsConfig.stsEndpoint = await sts.start()
  }
  let jwks: JwksServer | undefined
  if (o.verify === true) {
    jwks = new JwksServer(issuer.publicJwks())
    stsConfig.tokenJwks = await jwks.start()
    stsConfig.tokenIssuer = DEFAULT_ISSUER
  }
  const logs: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(line)
      cb()
    },
  })
  const config = baseConfig({ endpoint: mockUrl, ...stsConfig, ...o.config })
  const agent = await startAgent(config, {
    logger: createLogger(config.verbosity, sink),
    nodeCredentials: staticNodeCredentials(NODE_KEY),
    processMetrics: false,
    ...o.deps,
  })
  const listener = agent.listeners[0]!
  const url = `http://${listener.host}:${listener.port}/v1/credentials`
  let n = 0
  const secrets = new Set<string>([NODE_KEY.secretAccessKey, NODE_KEY.sessionToken])

  const h: Harness = {
    mock,
    sts,
    jwks,
    associationsFile,
    issuer,
    agent,
    url,
    port: listener.port,
    logs,
    secrets,
    async mint(opts = {}) {
      const token = await issuer.mint({
        namespace: 'default',
        serviceAccount: 'app',
        // Issued at the time the agent and the mock live in.
        ...(clock !== undefined ? { nowMs: clock.now() } : {}),
        ...opts,
      })
      secrets.add(token)
      return token
    },
    async tokenFile(token) {
      const file = join(dir, `token-${++n}`)
      await writeFile(file, token)
      return file
    },
    async sdkFetch(tokenFile, opts = {}) {
      const creds = await fromHttp({
        awsContainerCredentialsFullUri: url,
        awsContainerAuthorizationTokenFile: tokenFile,
        maxRetries: opts.maxRetries ?? 0,
        timeout: opts.timeout ?? 5000,
      })()
      secrets.add(creds.secretAccessKey)
      if (creds.sessionToken !== undefined) secrets.add(creds.sessionToken)
      return creds
    },
    metricsText: () => agent.registry.metrics(),
    async close() {
      await agent.close(500)
      await mock.stop()
      await sts?.stop()
      await jwks?.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
  return h
}

/**
 * A started mock EKS Auth for an agent run as its own process: the default associations, tokens
 * from a fresh issuer, and the node key of NODE_KEY_ENV.
 */
export async function startProcessMock(
  clusterName: string,
): Promise<{ mock: MockEksAuth; issuer: TokenIssuer; url: string }> {
  const issuer = await TokenIssuer.generate()
  const mock = new MockEksAuth({
    clusterName,
    associations: DEFAULT_ASSOCIATIONS,
    jwks: issuer.publicJwks(),
    nodeCredentials: [
      { accessKeyId: NODE_KEY.accessKeyId, secretAccessKey: NODE_KEY.secretAccessKey },
    ],
  })
  return { mock, issuer, url: await mock.start() }
}

/**
 * A plain GET with chosen headers (for hostile requests no SDK would send), from `localAddress`
 * when given (a pod of its own: any 127.x.y.z).
 */
export async function rawGet(
  url: string,
  headers: Record<string, string>,
  method = 'GET',
  localAddress?: string,
): Promise<{
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}> {
  const { request } = await import('node:http')
  const u = new URL(url)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname + u.search,
        method,
        headers,
        agent: false,
        setHost: false,
        localAddress,
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        )
      },
    )
    req.on('error', reject)
    req.end()
  })
}

/** Parse a Prometheus exposition value: `name{labels} value`. */
export function metricValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1))
  }
  return undefined
}
