import { Hash } from '@smithy/hash-node'
import { SignatureV4 } from '@smithy/signature-v4'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  DEFAULT_FAULTS,
  MockEksAuth,
  type MockEksAuthOptions,
} from '../../../src/mock/mock-eks-auth.js'
import { TokenIssuer } from '../../../src/mock/token-issuer.js'

const NODE_KEY = { accessKeyId: 'AKIDNODE1', secretAccessKey: 'node-secret-1' }
const ASSOCIATIONS = [
  { namespace: 'default', serviceAccount: 'app', roleArn: 'arn:aws:iam::111122223333:role/App' },
  {
    namespace: 'batch',
    serviceAccount: 'worker',
    roleArn: 'arn:aws:iam::444455556666:role/jobs/Worker',
    durationSeconds: 900,
  },
]

interface CallOptions {
  token?: string
  body?: string
  cluster?: string
  path?: string
  method?: string
  sign?: false | { accessKeyId: string; secretAccessKey: string }
  /** Signing time, epoch ms (a mock on an injected clock checks it against that clock). */
  signedAt?: number
}

interface CallResult {
  status: number
  headers: Record<string, string | string[] | undefined>
  json: Record<string, unknown>
}

async function call(base: string, opts: CallOptions): Promise<CallResult> {
  const url = new URL(base)
  const path = opts.path ?? `/clusters/${opts.cluster ?? 'c1'}/assume-role-for-pod-identity`
  const body = opts.body ?? JSON.stringify({ token: opts.token })
  const method = opts.method ?? 'POST'
  let headers: Record<string, string> = { host: url.host, 'content-type': 'application/json' }
  if (opts.sign !== false) {
    const signer = new SignatureV4({
      service: 'eks-auth',
      region: 'us-west-2',
      credentials: opts.sign ?? NODE_KEY,
      sha256: Hash.bind(null, 'sha256'),
    })
    const signed = await signer.sign(
      {
        method,
        protocol: 'http:',
        hostname: url.hostname,
        port: Number(url.port),
        path,
        query: {},
        headers,
        body,
      },
      opts.signedAt === undefined ? undefined : { signingDate: new Date(opts.signedAt) },
    )
    headers = signed.headers
  }
  const res = await request(`${base}${path}`, {
    method: method as 'POST',
    headers,
    ...(method === 'GET' ? {} : { body }),
  })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, json: text ? JSON.parse(text) : {} }
}

describe('MockEksAuth', () => {
  let issuer: TokenIssuer
  let mock: MockEksAuth
  let base: string
  const extra: MockEksAuth[] = []

  async function startExtra(opts: Partial<MockEksAuthOptions>): Promise<string> {
    const m = new MockEksAuth({ associations: ASSOCIATIONS, jwks: issuer.publicJwks(), ...opts })
    extra.push(m)
    return m.start()
  }

  beforeAll(async () => {
    issuer = await TokenIssuer.generate()
    mock = new MockEksAuth({
      clusterName: 'c1',
      associations: ASSOCIATIONS,
      jwks: issuer.publicJwks(),
      nodeCredentials: [NODE_KEY],
    })
    base = await mock.start()
  })

  afterEach(async () => {
    mock.setFaults({ ...DEFAULT_FAULTS })
    mock.resetStats()
    await Promise.all(extra.splice(0).map((m) => m.stop()))
  })

  afterAll(async () => {
    await mock.stop()
  })

  it('answers with the EKS Auth success body', async () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    const token = await issuer.mint({
      namespace: 'default',
      serviceAccount: 'app',
      podName: 'app-1',
    })
    const before = Math.floor(Date.now() / 1000)
    const res = await call(base, { token })
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toBe('application/json')
    expect(res.headers['x-amzn-requestid']).toMatch(/^[0-9a-f-]{36}$/)
    const body = res.json as {
      subject: unknown
      audience: string
      podIdentityAssociation: { associationArn: string; associationId: string }
      assumedRoleUser: { arn: string; assumeRoleId: string }
      credentials: {
        accessKeyId: string
        secretAccessKey: string
        sessionToken: string
        expiration: unknown
      }
    }
    expect(Object.keys(body)).toEqual([
      'subject',
      'audience',
      'podIdentityAssociation',
      'assumedRoleUser',
      'credentials',
    ])
    expect(body.subject).toEqual({ namespace: 'default', serviceAccount: 'app' })
    expect(body.audience).toBe('pods.eks.amazonaws.com')
    const { associationArn, associationId } = body.podIdentityAssociation
    expect(associationId).toMatch(/^a-[a-z2-7]{17}$/)
    expect(associationArn).toBe(
      `arn:aws:eks:us-west-2:111122223333:podidentityassociation/c1/${associationId}`,
    )
    expect(body.assumedRoleUser.arn).toMatch(
      /^arn:aws:sts::111122223333:assumed-role\/App\/eks-c1-app-1-[0-9a-f-]{36}$/,
    )
    const session = body.assumedRoleUser.arn.split('/').pop()
    expect(body.assumedRoleUser.assumeRoleId).toMatch(new RegExp(`^AROA[A-Z2-7]{17}:${session}$`))
    const c = body.credentials
    expect(c.accessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/)
    expect(c.secretAccessKey).toHaveLength(40)
    expect(c.sessionToken.length).toBeGreaterThanOrEqual(400)
    expect(typeof c.expiration).toBe('number')
    expect(c.expiration as number).toBeGreaterThanOrEqual(before + 21600)
    expect(c.expiration as number).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 21600)

    const again = await call(base, { token })
    const c2 = (again.json as { credentials: typeof c }).credentials
    expect(c2.accessKeyId).not.toBe(c.accessKeyId)
    expect(mock.stats).toEqual({
      requests: 2,
      byOutcome: { success: 2 },
      accessKeyIds: ['AKIDNODE1'],
    })
  })

  it('uses the association duration, and the role path in the ARN is dropped', async () => {
    const token = await issuer.mint({ namespace: 'batch', serviceAccount: 'worker' })
    const res = await call(base, { token })
    expect(res.status).toBe(200)
    const body = res.json as {
      credentials: { expiration: number }
      assumedRoleUser: { arn: string }
    }
    expect(body.credentials.expiration).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 900)
    expect(body.assumedRoleUser.arn).toMatch(
      /^arn:aws:sts::444455556666:assumed-role\/Worker\/eks-c1-/,
    )
  })

  it('sends errors in the restJson1 shape', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'nobody' })
    const res = await call(base, { token })
    expect(res.status).toBe(404)
    expect(res.headers['content-type']).toBe('application/json')
    expect(res.headers['x-amzn-errortype']).toBe(
      'ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.eksauth/',
    )
    expect(res.headers['x-amzn-requestid']).toMatch(/^[0-9a-f-]{36}$/)
    expect(res.json.__type).toBe('ResourceNotFoundException')
    expect(res.json.message).toBeTypeOf('string')
    expect(mock.stats.byOutcome).toEqual({ ResourceNotFoundException: 1 })
  })

  it('answers 400 ExpiredTokenException by the injected clock', async () => {
    const t0 = Date.UTC(2026, 0, 1)
    const url = await startExtra({ now: () => t0 + 25 * 3600_000 })
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app', nowMs: t0 })
    const res = await call(url, { token, signedAt: t0 + 25 * 3600_000 })
    expect(res.status).toBe(400)
    expect(res.json.__type).toBe('ExpiredTokenException')
  })

  it('checks the time claims on every call, also for tokens it verified before', async () => {
    let now = Date.UTC(2026, 0, 1)
    const url = await startExtra({ now: () => now })
    const token = await issuer.mint({
      namespace: 'default',
      serviceAccount: 'app',
      nowMs: now,
      notBeforeMs: now + 60_000,
      expiresInSeconds: 3600,
    })
    expect((await call(url, { token, signedAt: now })).json.__type).toBe('InvalidTokenException')
    now += 120_000
    expect((await call(url, { token, signedAt: now })).status).toBe(200)
    now += 3600_000
    expect((await call(url, { token, signedAt: now })).json.__type).toBe('ExpiredTokenException')
  })

  it('answers 400 InvalidTokenException for another key, audience or issuer', async () => {
    const other = await TokenIssuer.generate('ES256')
    const foreign = await other.mint({ namespace: 'default', serviceAccount: 'app' })
    const res = await call(base, { token: foreign })
    expect(res.status).toBe(400)
    expect(res.json.__type).toBe('InvalidTokenException')
    expect(res.json.message).not.toContain(foreign)

    const wrongAud = await issuer.mint({
      namespace: 'default',
      serviceAccount: 'app',
      audience: 'sts.amazonaws.com',
    })
    expect((await call(base, { token: wrongAud })).json.__type).toBe('InvalidTokenException')

    const url = await startExtra({ issuer: 'https://expected.example' })
    const wrongIss = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    expect((await call(url, { token: wrongIss })).json.__type).toBe('InvalidTokenException')
  })

  it('answers 404 ResourceNotFoundException for another cluster', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    const res = await call(base, { token, cluster: 'other' })
    expect(res.status).toBe(404)
    expect(res.json.__type).toBe('ResourceNotFoundException')
  })

  it('answers 400 for bad bodies without echoing the token', async () => {
    const cases: Array<[string, string]> = [
      ['not json', 'InvalidRequestException'],
      ['', 'InvalidRequestException'],
      ['[1]', 'InvalidRequestException'],
      ['{}', 'InvalidParameterException'],
      ['{"token": ""}', 'InvalidParameterException'],
      ['{"token": "secret-not-a-jwt"}', 'InvalidParameterException'],
    ]
    for (const [body, code] of cases) {
      const res = await call(base, { body })
      expect(res.status, body).toBe(400)
      expect(res.json.__type, body).toBe(code)
      expect(String(res.json.message)).not.toContain('secret-not-a-jwt')
    }
  })

  it('answers 403 for unsigned, badly signed and unknown-key requests, and records key ids', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    const unsigned = await call(base, { token, sign: false })
    expect(unsigned.status).toBe(403)
    expect(unsigned.json).toEqual({
      __type: 'MissingAuthenticationTokenException',
      message: 'Missing Authentication Token',
    })
    const bad = await call(base, {
      token,
      sign: { accessKeyId: 'AKIDNODE1', secretAccessKey: 'wrong' },
    })
    expect(bad.status).toBe(403)
    expect(bad.json.__type).toBe('InvalidSignatureException')
    const unknown = await call(base, {
      token,
      sign: { accessKeyId: 'AKIDOTHER', secretAccessKey: 'x' },
    })
    expect(unknown.json.__type).toBe('UnrecognizedClientException')
    expect(mock.stats.accessKeyIds).toEqual(['AKIDNODE1', 'AKIDOTHER'])

    // Without node keys only well-formedness is checked.
    const url = await startExtra({})
    expect(
      (await call(url, { token, sign: { accessKeyId: 'ANY', secretAccessKey: 'x' } })).status,
    ).toBe(200)
  })

  it('answers 404 UnknownOperationException for other paths and methods', async () => {
    const path = await call(base, { path: '/clusters/c1/other', body: '{}' })
    expect(path.status).toBe(404)
    expect(path.json.__type).toBe('UnknownOperationException')
    const get = await call(base, { method: 'GET' })
    expect(get.status).toBe(404)
    expect(get.json.__type).toBe('UnknownOperationException')
  })

  it('refuses a signature more than 5 minutes from its clock, as AWS does (403 InvalidSignatureException)', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    const old = await call(base, { token, signedAt: Date.now() - 6 * 60_000 })
    expect(old.status).toBe(403)
    expect(old.json.__type).toBe('InvalidSignatureException')
    expect(old.json.message).toMatch(
      /^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 5 min\.\)$/,
    )
    const ahead = await call(base, { token, signedAt: Date.now() + 6 * 60_000 })
    expect(ahead.status).toBe(403)
    expect(ahead.json.message).toMatch(/^Signature not yet current: /)
    // within the allowance: served
    expect((await call(base, { token, signedAt: Date.now() - 4 * 60_000 })).status).toBe(200)
  })

  it('throttles with a token bucket (rate = burst = throttleQps)', async () => {
    const t = Date.UTC(2026, 0, 1)
    const url = await startExtra({ now: () => t, faults: { throttleQps: 5 } })
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app', nowMs: t })
    const results = await Promise.all(
      Array.from({ length: 20 }, () => call(url, { token, signedAt: t })),
    )
    const statuses = results.map((r) => r.status)
    expect(statuses.filter((s) => s === 200)).toHaveLength(5)
    const throttled = results.filter((r) => r.status === 429)
    expect(throttled).toHaveLength(15)
    expect(throttled[0]?.json).toEqual({ __type: 'ThrottlingException', message: 'Rate exceeded' })
    expect(extra[0]?.stats.byOutcome).toEqual({ success: 5, ThrottlingException: 15 })
  })

  it('injects server errors with errorRate and errorStatus', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    mock.setFaults({ errorRate: 1 })
    const res503 = await call(base, { token })
    expect(res503.status).toBe(503)
    expect(res503.json.__type).toBe('ServiceUnavailableException')
    mock.setFaults({ errorStatus: 500 })
    const res500 = await call(base, { token })
    expect(res500.status).toBe(500)
    expect(res500.json.__type).toBe('InternalServerException')
  })

  it('delays answers by latencyMs', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    mock.setFaults({ latencyMs: 150 })
    const started = performance.now()
    const res = await call(base, { token })
    expect(res.status).toBe(200)
    expect(performance.now() - started).toBeGreaterThanOrEqual(140)
  })

  it('destroys sockets when down, while the admin endpoints keep working', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    const admin = await request(`${base}/_mock/faults`, {
      method: 'POST',
      body: JSON.stringify({ down: true }),
    })
    expect(admin.statusCode).toBe(200)
    expect(await admin.body.json()).toEqual({ ...DEFAULT_FAULTS, down: true })
    await expect(call(base, { token })).rejects.toThrow()
    const stats = await request(`${base}/_mock/stats`)
    expect(await stats.body.json()).toEqual({
      requests: 1,
      byOutcome: { SocketDestroyed: 1 },
      accessKeyIds: [],
    })
    await (
      await request(`${base}/_mock/faults`, { method: 'POST', body: '{"down": false}' })
    ).body.text()
    expect((await call(base, { token })).status).toBe(200)
  })

  it('serves the admin endpoints', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    await call(base, { token })
    await call(base, { token, sign: false })
    const stats = await request(`${base}/_mock/stats`)
    expect(await stats.body.json()).toEqual({
      requests: 2,
      byOutcome: { success: 1, MissingAuthenticationTokenException: 1 },
      accessKeyIds: ['AKIDNODE1'],
    })
    const bad = await request(`${base}/_mock/faults`, { method: 'POST', body: '{"errorRate": 2}' })
    expect(bad.statusCode).toBe(400)
    expect(await bad.body.json()).toEqual({ message: 'errorRate must be a number from 0 to 1' })
    const set = await request(`${base}/_mock/faults`, { method: 'POST', body: '{"latencyMs": 1}' })
    expect(await set.body.json()).toMatchObject({ latencyMs: 1 })
    expect(mock.faults.latencyMs).toBe(1)
    const reset = await request(`${base}/_mock/reset`, { method: 'POST' })
    expect(reset.statusCode).toBe(200)
    await reset.body.text()
    expect(mock.stats).toEqual({ requests: 0, byOutcome: {}, accessKeyIds: [] })
    const unknown = await request(`${base}/_mock/nope`)
    expect(unknown.statusCode).toBe(404)
    await unknown.body.text()
  })

  it('replaces associations', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    mock.setAssociations([])
    try {
      expect((await call(base, { token })).status).toBe(404)
    } finally {
      mock.setAssociations(ASSOCIATIONS)
    }
    expect((await call(base, { token })).status).toBe(200)
    expect(() =>
      mock.setAssociations([{ namespace: 'x', serviceAccount: 'y', roleArn: 'foo' }]),
    ).toThrow(/associations\[0\]\.roleArn/)
  })
})
