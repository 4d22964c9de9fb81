import { Hash } from '@smithy/hash-node'
import { SignatureV4 } from '@smithy/signature-v4'
import { describe, expect, it } from 'vitest'
import {
  SigV4Checker,
  parseAuthorization,
  type SigV4Request,
} from '../../../src/mock/sigv4-check.js'

const KEY = { accessKeyId: 'AKIDNODE', secretAccessKey: 'node-secret' }
const PATH = '/clusters/c1/assume-role-for-pod-identity'
const BODY = '{"token":"a.b.c"}'

async function signed(
  opts: {
    service?: string
    region?: string
    sessionToken?: string
    secret?: string
    applyChecksum?: boolean
  } = {},
): Promise<SigV4Request> {
  const signer = new SignatureV4({
    service: opts.service ?? 'eks-auth',
    region: opts.region ?? 'us-west-2',
    credentials: {
      accessKeyId: KEY.accessKeyId,
      secretAccessKey: opts.secret ?? KEY.secretAccessKey,
      ...(opts.sessionToken !== undefined ? { sessionToken: opts.sessionToken } : {}),
    },
    sha256: Hash.bind(null, 'sha256'),
    applyChecksum: opts.applyChecksum ?? true,
  })
  const req = await signer.sign({
    method: 'POST',
    protocol: 'http:',
    hostname: '127.0.0.1',
    path: PATH,
    query: {},
    headers: { host: '127.0.0.1:1234', 'content-type': 'application/json' },
    body: BODY,
  })
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v
  headers['user-agent'] = 'test' // unsigned extra header
  return { method: 'POST', path: PATH, headers, body: Buffer.from(BODY) }
}

const verifying = new SigV4Checker({ region: 'us-west-2', credentials: [KEY] })

describe('parseAuthorization', () => {
  it('parses the header', () => {
    expect(
      parseAuthorization(
        'AWS4-HMAC-SHA256 Credential=AKID/20240101/us-west-2/eks-auth/aws4_request, SignedHeaders=host;x-amz-date, Signature=ABCDEF',
      ),
    ).toEqual({
      accessKeyId: 'AKID',
      date: '20240101',
      region: 'us-west-2',
      service: 'eks-auth',
      signedHeaders: ['host', 'x-amz-date'],
      signature: 'abcdef',
    })
  })

  it('names what is missing', () => {
    expect(parseAuthorization('AWS4-HMAC-SHA256 Credential=A/20240101/r/s/aws4_request')).toEqual({
      error:
        "Authorization header requires 'SignedHeaders' parameter. Authorization header requires 'Signature' parameter.",
    })
    expect(parseAuthorization('Bearer x')).toHaveProperty('error')
  })
})

describe('SigV4Checker', () => {
  it('accepts a request signed with @smithy/signature-v4, with and without a session token', async () => {
    expect(await verifying.check(await signed())).toEqual({
      ok: true,
      accessKeyId: 'AKIDNODE',
      verified: true,
    })
    expect((await verifying.check(await signed({ sessionToken: 'SESSION' }))).ok).toBe(true)
  })

  it('only checks well-formedness without keys', async () => {
    const loose = new SigV4Checker()
    expect(await loose.check(await signed({ secret: 'whatever' }))).toEqual({
      ok: true,
      accessKeyId: 'AKIDNODE',
      verified: false,
    })
  })

  it('refuses a tampered body, path or signed header', async () => {
    const base = await signed()
    for (const req of [
      { ...base, body: Buffer.from('{"token":"x.y.z"}') },
      { ...base, path: '/clusters/c2/assume-role-for-pod-identity' },
      { ...base, headers: { ...base.headers, host: 'evil.example' } },
      { ...base, method: 'PUT' },
    ]) {
      expect(await verifying.check(req)).toMatchObject({
        ok: false,
        status: 403,
        code: 'InvalidSignatureException',
        accessKeyId: 'AKIDNODE',
      })
    }
  })

  it('refuses a tampered body even when x-amz-content-sha256 is not signed', async () => {
    const base = await signed({ applyChecksum: false })
    expect(base.headers).not.toHaveProperty('x-amz-content-sha256')
    expect((await verifying.check(base)).ok).toBe(true)
    const tampered = { ...base, body: Buffer.from('{"token":"x.y.z"}') }
    expect(await verifying.check(tampered)).toMatchObject({ code: 'InvalidSignatureException' })
  })

  it('refuses a wrong secret, service or region', async () => {
    expect(await verifying.check(await signed({ secret: 'wrong' }))).toMatchObject({
      code: 'InvalidSignatureException',
    })
    const svc = await verifying.check(await signed({ service: 'sts' }))
    expect(svc).toMatchObject({ code: 'InvalidSignatureException' })
    expect(svc.ok === false && svc.message).toMatch(/scoped to correct service: 'eks-auth'/)
    expect(await verifying.check(await signed({ region: 'eu-west-1' }))).toMatchObject({
      code: 'InvalidSignatureException',
    })
  })

  it('refuses an unknown access key when keys are configured', async () => {
    const other = new SigV4Checker({
      credentials: [{ accessKeyId: 'OTHER', secretAccessKey: 's' }],
    })
    expect(await other.check(await signed())).toMatchObject({
      ok: false,
      code: 'UnrecognizedClientException',
      accessKeyId: 'AKIDNODE',
    })
  })

  it('maps missing and malformed headers', async () => {
    const base = await signed()
    const noAuth = { ...base.headers }
    delete noAuth.authorization
    expect(await verifying.check({ ...base, headers: noAuth })).toEqual({
      ok: false,
      status: 403,
      code: 'MissingAuthenticationTokenException',
      message: 'Missing Authentication Token',
    })
    expect(
      await verifying.check({
        ...base,
        headers: { ...base.headers, authorization: 'AWS4-HMAC-SHA256 junk' },
      }),
    ).toMatchObject({ code: 'IncompleteSignatureException' })
    const hostUnsigned = (base.headers.authorization as string).replace('host;', '')
    expect(
      await verifying.check({ ...base, headers: { ...base.headers, authorization: hostUnsigned } }),
    ).toMatchObject({
      code: 'IncompleteSignatureException',
      message: expect.stringMatching(/'host'/),
    })
    const noDate = { ...base.headers }
    delete noDate['x-amz-date']
    expect(await verifying.check({ ...base, headers: noDate })).toMatchObject({
      code: 'IncompleteSignatureException',
    })
  })
})
