import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { UpstreamError } from '../../../src/errors.js'
import { MockSts } from '../../../src/mock/mock-sts.js'
import { TokenIssuer } from '../../../src/mock/token-issuer.js'
import { checkToken } from '../../../src/token/validity.js'
import type { StsSourceOptions } from '../../../src/upstream/sts-source.js'
import { StsSource, sessionName } from '../../../src/upstream/sts-source.js'
import { stsError } from '../../../src/upstream/sts-response.js'
import { systemClock } from '../../../src/util/clock.js'
import type { ConnectProxy } from '../../helpers/connect-proxy.js'
import { startConnectProxy } from '../../helpers/connect-proxy.js'

const TOKEN =
  'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphcHAifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg'

/** What @aws-sdk/client-sts throws for an error answer. */
function serviceError(code: string, status: number, message: string) {
  return Object.assign(new Error(message), {
    name: `${code}Exception`,
    Code: code,
    $metadata: { httpStatusCode: status, requestId: 'req-1' },
  })
}

describe('sessionName', () => {
  const fixed = () => 0.5
  it("has EKS's shape: eks-<cluster>-<pod>-<random>", () => {
    expect(sessionName('prod', 'web-7d4b9c', fixed)).toBe('eks-prod-web-7d4b9c-iiiiiiiiii')
    expect(sessionName(undefined, 'web', fixed)).toBe('eks-web-iiiiiiiiii')
  })

  it("is cut to STS's 64 characters and only the characters STS allows", () => {
    const name = sessionName('c'.repeat(100), 'p'.repeat(100), Math.random)
    expect(name).toHaveLength(64)
    expect(name).toMatch(/^eks-c+-[a-z0-9]{10}$/)
    expect(sessionName('c1', 'pod/with:odd chars', fixed)).toBe(
      'eks-c1-pod-with-odd-chars-iiiiiiiiii',
    )
    expect(sessionName('c1', 'pod', Math.random)).toMatch(/^[\w+=,.@-]{2,64}$/)
  })
})

describe('stsError', () => {
  it.each([
    ['InvalidIdentityToken', 400, 400, true],
    ['ExpiredTokenException', 400, 400, true],
    ['AccessDenied', 403, 403, true],
    ['IDPRejectedClaim', 403, 403, true],
    ['Throttling', 400, 429, false],
    ['IDPCommunicationError', 400, 400, false],
    ['ServiceUnavailable', 503, 503, false],
    ['InternalFailure', 500, 500, false],
    ['SomethingNew', 409, 409, false],
  ])('%s (HTTP %d) -> %d, irrecoverable %s', (code, wire, status, irrecoverable) => {
    const e = stsError(serviceError(code, wire, 'msg'), false, TOKEN)
    expect(e).toBeInstanceOf(UpstreamError)
    expect(e.statusCode).toBe(status)
    expect(e.code).toBe(code)
    expect((e as UpstreamError).irrecoverable).toBe(irrecoverable)
    expect(e.message).toMatch(new RegExp(`^\\[req-1\\]: \\(${code}\\): msg`))
  })

  it('says what to look at for a refused role, and never quotes the token', () => {
    const denied = stsError(
      serviceError('AccessDenied', 403, `Not authorized ${TOKEN}`),
      false,
      TOKEN,
    )
    expect(denied.message).toContain("likely cause: the role's trust policy")
    expect(denied.message).not.toContain(TOKEN.slice(0, 20))
    const claim = stsError(serviceError('IDPRejectedClaim', 403, 'rejected'), false, TOKEN)
    expect(claim.message).toContain('audience is not pods.eks.amazonaws.com')
  })

  it('a 5xx is never final, whatever its code', () => {
    const e = stsError(
      serviceError('InvalidIdentityToken', 503, 'odd'),
      false,
      TOKEN,
    ) as UpstreamError
    expect(e.statusCode).toBe(503)
    expect(e.irrecoverable).toBe(false)
  })

  it('transport failures: unreachable 502, timeout 504', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
    expect(stsError(refused, false, TOKEN)).toMatchObject({
      statusCode: 502,
      code: 'UpstreamUnreachable',
    })
    expect(stsError(new Error('aborted'), true, TOKEN)).toMatchObject({
      statusCode: 504,
      code: 'UpstreamTimeout',
    })
  })
})

describe('StsSource against the mock STS', () => {
  const ROLE = 'arn:aws:iam::111122223333:role/App'
  const association = { namespace: 'default', serviceAccount: 'app', roleArn: ROLE }
  let issuer: TokenIssuer
  let mock: MockSts
  let url: string
  const proxies: ConnectProxy[] = []

  beforeAll(async () => {
    issuer = await TokenIssuer.generate()
    mock = new MockSts({ associations: [association], jwks: issuer.publicJwks() })
    url = await mock.start()
  })
  afterEach(() => {
    vi.unstubAllEnvs()
    mock.setFaults({ errorRate: 0, throttleQps: 0 })
    mock.resetStats()
  })
  afterAll(async () => {
    await mock.stop()
    for (const p of proxies) p.server.close()
  })

  const source = (over: Partial<StsSourceOptions> = {}) =>
    new StsSource({
      region: 'us-west-2',
      endpoint: url,
      associations: { find: (n, s) => (n === 'default' && s === 'app' ? association : undefined) },
      clusterName: 'c1',
      defaultDurationSeconds: 3600,
      clock: systemClock,
      random: () => 0,
      ...over,
    })
  const request = async () =>
    checkToken(
      await issuer.mint({ namespace: 'default', serviceAccount: 'app', podName: 'p1' }),
      Date.now(),
    )

  it('honours AWS_ENDPOINT_URL_STS when no --sts-endpoint is given', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL_STS', url)
    const s = source({ endpoint: undefined })
    const answer = await s.fetch(await request())
    expect(answer.credentials.assumedRoleArn).toMatch(
      /^arn:aws:sts::111122223333:assumed-role\/App\/eks-c1-p1-/,
    )
    expect(mock.stats.byOutcome.success).toBe(1)
    await s.close()
  })

  it('honours HTTP_PROXY (CONNECT through the proxy)', async () => {
    const proxy = await startConnectProxy()
    proxies.push(proxy)
    vi.stubEnv('HTTP_PROXY', `http://127.0.0.1:${proxy.port}`)
    vi.stubEnv('http_proxy', `http://127.0.0.1:${proxy.port}`)
    const s = source()
    await s.fetch(await request())
    expect(proxy.tunnels()).toBe(1)
    await s.close()
  })

  it('retries a 503 up to 3 attempts; never Throttling (the gate paces it) or a refusal', async () => {
    const s = source()
    mock.setFaults({ errorRate: 1, errorStatus: 503 })
    await expect(s.fetch(await request())).rejects.toMatchObject({ statusCode: 503 })
    expect(mock.stats.requests).toBe(3)
    mock.setFaults({ errorRate: 0, throttleQps: 1 })
    mock.resetStats()
    await s.fetch(await request())
    await expect(s.fetch(await request())).rejects.toMatchObject({
      statusCode: 429,
      code: 'Throttling',
    })
    expect(mock.stats.requests).toBe(2)
    await s.close()
  })
})
