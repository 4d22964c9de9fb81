// The mock STS as @aws-sdk/client-sts sees it: the real client, its own HTTP handler, the mock on
// a real socket. Its answers and errors must parse as STS's do (protocol.md 4).

import { AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MockSts } from '../../../src/mock/mock-sts.js'
import { TokenIssuer } from '../../../src/mock/token-issuer.js'

const ROLE = 'arn:aws:iam::111122223333:role/App'

let issuer: TokenIssuer
let mock: MockSts
let client: STSClient
let now = Date.now()

beforeAll(async () => {
  issuer = await TokenIssuer.generate()
  mock = new MockSts({
    associations: [{ namespace: 'default', serviceAccount: 'app', roleArn: ROLE }],
    jwks: issuer.publicJwks(),
    now: () => now,
  })
  client = new STSClient({ region: 'us-west-2', endpoint: await mock.start(), maxAttempts: 1 })
})
afterAll(async () => {
  client.destroy()
  await mock.stop()
})

const assume = (over: Record<string, unknown> = {}, token?: string) =>
  (async () =>
    client.send(
      new AssumeRoleWithWebIdentityCommand({
        RoleArn: ROLE,
        RoleSessionName: 'eks-c1-pod-abc',
        WebIdentityToken:
          token ?? (await issuer.mint({ namespace: 'default', serviceAccount: 'app', nowMs: now })),
        DurationSeconds: 900,
        ...over,
      }),
    ))()

async function failure(p: Promise<unknown>) {
  const e = (await p.then(
    () => undefined,
    (err: unknown) => err,
  )) as { name: string; Code?: string; $metadata: { httpStatusCode: number; requestId?: string } }
  if (e === undefined) throw new Error('the mock STS answered with credentials')
  return e
}

describe('MockSts through @aws-sdk/client-sts', () => {
  it('answers with credentials the client parses: keys, expiry after DurationSeconds, the assumed-role ARN', async () => {
    const out = await assume()
    expect(out.Credentials?.AccessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/)
    expect(out.Credentials?.SecretAccessKey).toHaveLength(40)
    expect(out.Credentials?.Expiration?.getTime()).toBe(Math.floor((now + 900_000) / 1000) * 1000)
    expect(out.AssumedRoleUser?.Arn).toBe(
      'arn:aws:sts::111122223333:assumed-role/App/eks-c1-pod-abc',
    )
    expect(out.AssumedRoleUser?.AssumedRoleId).toMatch(/^AROA[A-Z2-7]{17}:eks-c1-pod-abc$/)
    expect(out.Audience).toBe('pods.eks.amazonaws.com')
    expect(out.SubjectFromWebIdentityToken).toBe('system:serviceaccount:default:app')
    expect(out.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/)
  })

  it.each([
    [
      'a token signed with another key',
      async () =>
        assume(
          {},
          await (
            await TokenIssuer.generate()
          ).mint({ namespace: 'default', serviceAccount: 'app' }),
        ),
      'InvalidIdentityTokenException',
      'InvalidIdentityToken',
      400,
    ],
    [
      'a role the service account is not trusted with',
      () => assume({ RoleArn: 'arn:aws:iam::111122223333:role/Other' }),
      'AccessDenied',
      'AccessDenied',
      403,
    ],
    [
      'a session name STS refuses',
      () => assume({ RoleSessionName: 'no spaces' }),
      'ValidationError',
      'ValidationError',
      400,
    ],
    [
      'a duration over 12 h',
      () => assume({ DurationSeconds: 50_000 }),
      'ValidationError',
      'ValidationError',
      400,
    ],
  ])('%s', async (_what, call, name, code, status) => {
    const e = await failure(call())
    expect(e.name).toBe(name)
    expect(e.Code).toBe(code)
    expect(e.$metadata.httpStatusCode).toBe(status)
  })

  it('an expired token -> ExpiredTokenException', async () => {
    const token = await issuer.mint({
      namespace: 'default',
      serviceAccount: 'app',
      nowMs: now,
      expiresInSeconds: 60,
    })
    now += 120_000
    const e = await failure(assume({}, token))
    expect(e.name).toBe('ExpiredTokenException')
  })

  it('faults: Throttling (HTTP 400) and 503, counted by outcome', async () => {
    mock.resetStats()
    mock.setFaults({ throttleQps: 1 })
    await assume()
    const throttled = await failure(assume())
    expect(throttled.Code).toBe('Throttling')
    expect(throttled.$metadata.httpStatusCode).toBe(400)
    mock.setFaults({ throttleQps: 0, errorRate: 1, errorStatus: 503 })
    const unavailable = await failure(assume())
    expect(unavailable.$metadata.httpStatusCode).toBe(503)
    mock.setFaults({ errorRate: 0 })
    expect(mock.stats.byOutcome).toEqual({ success: 1, Throttling: 1, ServiceUnavailable: 1 })
  })
})
