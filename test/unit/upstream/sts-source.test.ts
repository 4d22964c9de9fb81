import { describe, expect, it } from 'vitest'
import { UpstreamError } from '../../../src/errors.js'
import { sessionName, stsError } from '../../../src/upstream/sts-source.js'

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
