import { describe, expect, it } from 'vitest'
import {
  InvalidUpstreamResponseError,
  UpstreamError,
  isIrrecoverable,
} from '../../../src/errors.js'
import {
  accountIdFromArn,
  parseErrorResponse,
  parseSuccessBody,
  requestIdFrom,
  sanitizeErrorCode,
} from '../../../src/upstream/eks-auth-response.js'

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY'

function successBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    subject: { namespace: 'default', serviceAccount: 'my-sa' },
    audience: 'pods.eks.amazonaws.com',
    podIdentityAssociation: {
      associationArn: 'arn:aws:eks:us-west-2:111122223333:podidentityassociation/my-cluster/a-abc',
      associationId: 'a-abc',
    },
    assumedRoleUser: {
      arn: 'arn:aws:sts::111122223333:assumed-role/MyRole/eks-my-cluster-my-pod-uuid',
      assumeRoleId: 'AROAEXAMPLE:eks-my-cluster-my-pod-uuid',
    },
    credentials: {
      sessionToken: 'SESSIONTOKEN',
      secretAccessKey: SECRET,
      accessKeyId: 'ASIAEXAMPLE',
      expiration: 1704070800.25,
    },
    ...overrides,
  }
}

function invalidMessage(body: unknown): string {
  try {
    parseSuccessBody(typeof body === 'string' ? body : JSON.stringify(body))
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidUpstreamResponseError)
    const e = err as InvalidUpstreamResponseError
    expect(e.statusCode).toBe(502)
    expect(e.code).toBe('InvalidUpstreamResponse')
    expect(e.message).not.toContain(SECRET)
    return e.message
  }
  throw new Error('expected parseSuccessBody to throw')
}

describe('parseSuccessBody', () => {
  it('parses the protocol.md 1.7 example', () => {
    const answer = parseSuccessBody(Buffer.from(JSON.stringify(successBody())))
    expect(answer).toEqual({
      credentials: {
        accessKeyId: 'ASIAEXAMPLE',
        secretAccessKey: SECRET,
        sessionToken: 'SESSIONTOKEN',
        accountId: '111122223333',
        expirationMs: 1704070800250,
        assumedRoleArn: 'arn:aws:sts::111122223333:assumed-role/MyRole/eks-my-cluster-my-pod-uuid',
      },
      association: { id: 'a-abc', namespace: 'default', serviceAccount: 'my-sa' },
      issuedBy: 'eks-auth',
    })
  })

  it('accepts integer epoch seconds and missing optional fields', () => {
    const body = successBody({
      subject: undefined,
      podIdentityAssociation: { associationId: 42 },
    })
    const answer = parseSuccessBody(JSON.stringify(body))
    expect(answer.credentials.expirationMs).toBe(1704070800250)
    expect(answer.association.id).toBeUndefined()
    expect(answer.association.namespace).toBeUndefined()
    expect(answer.association.serviceAccount).toBeUndefined()
    const whole = parseSuccessBody(
      JSON.stringify(
        successBody({
          credentials: { ...(successBody().credentials as object), expiration: 946684800 },
        }),
      ),
    )
    expect(whole.credentials.expirationMs).toBe(946684800000)
  })

  const creds = successBody().credentials as Record<string, unknown>
  it.each([
    ['non-JSON', 'not json', /not JSON/],
    ['HTML page', '<html>502</html>', /not JSON/],
    ['JSON array', [], /must be a JSON object, got array/],
    ['JSON null', 'null', /must be a JSON object, got null/],
    ['missing credentials', successBody({ credentials: undefined }), /credentials is missing/],
    [
      'credentials a string',
      successBody({ credentials: 'x' }),
      /credentials must be an object, got string/,
    ],
    [
      'missing accessKeyId',
      successBody({ credentials: { ...creds, accessKeyId: undefined } }),
      /credentials\.accessKeyId is missing/,
    ],
    [
      'secretAccessKey a number',
      successBody({ credentials: { ...creds, secretAccessKey: 5 } }),
      /credentials\.secretAccessKey must be a string, got number/,
    ],
    [
      'empty sessionToken',
      successBody({ credentials: { ...creds, sessionToken: '' } }),
      /credentials\.sessionToken is empty/,
    ],
    [
      'expiration as string',
      successBody({ credentials: { ...creds, expiration: '2024-01-01T00:00:00Z' } }),
      /credentials\.expiration must be a number \(epoch seconds\), got string/,
    ],
    [
      'missing expiration',
      successBody({ credentials: { ...creds, expiration: undefined } }),
      /credentials\.expiration is missing/,
    ],
    [
      'negative expiration',
      successBody({ credentials: { ...creds, expiration: -1 } }),
      /credentials\.expiration is not a positive finite number/,
    ],
    [
      'missing assumedRoleUser',
      successBody({ assumedRoleUser: undefined }),
      /assumedRoleUser is missing/,
    ],
    ['missing arn', successBody({ assumedRoleUser: {} }), /assumedRoleUser\.arn is missing/],
    [
      'bad ARN',
      successBody({ assumedRoleUser: { arn: 'not-an-arn' } }),
      /assumedRoleUser\.arn is not an ARN with a 12-digit account id/,
    ],
    [
      'ARN with a short account id',
      successBody({ assumedRoleUser: { arn: 'arn:aws:sts::1234:assumed-role/R/s' } }),
      /12-digit account id/,
    ],
  ])('%s -> InvalidUpstreamResponseError', (_name, body, message) => {
    expect(invalidMessage(body)).toMatch(message)
  })

  it('accountIdFromArn', () => {
    expect(accountIdFromArn('arn:aws-cn:sts::123456789012:assumed-role/R/s')).toBe('123456789012')
    expect(accountIdFromArn('arn:aws:sts::123456789012')).toBeUndefined()
    expect(accountIdFromArn('arn:aws:sts::12345678901a:assumed-role/R/s')).toBeUndefined()
  })
})

describe('parseErrorResponse', () => {
  const json = (v: unknown) => JSON.stringify(v)

  it.each([
    ['AccessDeniedException', 400],
    ['ExpiredTokenException', 400],
    ['InvalidParameterException', 400],
    ['InvalidRequestException', 400],
    ['InvalidTokenException', 400],
    ['ResourceNotFoundException', 404],
    ['ThrottlingException', 429],
    ['InternalServerException', 500],
    ['ServiceUnavailableException', 503],
  ])('modelled error %s (HTTP %i)', (code, status) => {
    const err = parseErrorResponse(
      status,
      { 'x-amzn-errortype': code, 'x-amzn-requestid': 'req-1' },
      json({ __type: code, message: `some ${code}` }),
    )
    expect(err).toBeInstanceOf(UpstreamError)
    expect(err.statusCode).toBe(status)
    expect(err.code).toBe(code)
    expect(err.upstreamMessage).toBe(`some ${code}`)
    expect(err.requestId).toBe('req-1')
    expect(err.fault).toBe(status >= 500 ? 'server' : 'client')
    expect(err.message).toBe(
      `[req-1]: (${code}): some ${code}, fault: ${status >= 500 ? 'server' : 'client'}`,
    )
  })

  it('never quotes back what the request carried: token and session token cut out of message, code and request id', () => {
    const token = `eyJhbGciOiJSUzI1NiJ9.${'eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphcHAifQ'}.${'s'.repeat(40)}`
    const session = 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLXdlc3QtMiJHMEUC'
    const err = parseErrorResponse(
      400,
      {
        'x-amzn-errortype': token.slice(0, 90),
        'x-amzn-requestid': `req-${session.slice(0, 30)}`,
      },
      json({
        message: `Invalid token ${token.slice(0, 70)} (request {"token":"${token}"}, x-amz-security-token:${session})`,
      }),
      [token, session],
    )
    const seen = [err.code, err.message, err.upstreamMessage, err.requestId ?? ''].join(' ')
    for (const secret of [token, session]) {
      for (let i = 0; i + 16 <= secret.length; i++) {
        expect(seen.includes(secret.slice(i, i + 16))).toBe(false)
      }
    }
    expect(err.code).toBe('UnknownError')
    expect(err.upstreamMessage).toBe(
      'Invalid token [redacted] (request {"token":"[redacted]"}, x-amz-security-token:[redacted])',
    )
    expect(err.requestId).toBe('[redacted]')
  })

  it('the header wins over the body', () => {
    const err = parseErrorResponse(
      400,
      { 'x-amzn-errortype': 'InvalidTokenException' },
      json({ code: 'AccessDeniedException', __type: 'ExpiredTokenException', message: 'm' }),
    )
    expect(err.code).toBe('InvalidTokenException')
  })

  it('header with a coral URL suffix', () => {
    const err = parseErrorResponse(
      400,
      {
        'x-amzn-errortype':
          'AccessDeniedException:http://internal.amazon.com/coral/com.amazonaws.eksauth/',
      },
      json({ message: 'denied' }),
    )
    expect(err.code).toBe('AccessDeniedException')
    expect(err.upstreamMessage).toBe('denied')
    expect(isIrrecoverable(err)).toBe(true)
  })

  it('header lookup is case-insensitive', () => {
    const err = parseErrorResponse(404, { 'X-Amzn-ErrorType': 'ResourceNotFoundException' }, '')
    expect(err.code).toBe('ResourceNotFoundException')
  })

  it('__type with the com.amazonaws.eksauth# prefix', () => {
    const err = parseErrorResponse(
      400,
      {},
      json({ __type: 'com.amazonaws.eksauth#ExpiredTokenException', message: 'expired' }),
    )
    expect(err.code).toBe('ExpiredTokenException')
  })

  it('body code beats __type; code and Code keys; message and Message keys', () => {
    expect(
      parseErrorResponse(400, {}, json({ code: 'InvalidTokenException', __type: 'X' })).code,
    ).toBe('InvalidTokenException')
    const upper = parseErrorResponse(
      400,
      {},
      json({ Code: 'AccessDeniedException', Message: 'M1' }),
    )
    expect(upper.code).toBe('AccessDeniedException')
    expect(upper.upstreamMessage).toBe('M1')
    const lower = parseErrorResponse(429, {}, json({ code: 'ThrottlingException', message: 'm2' }))
    expect(lower.code).toBe('ThrottlingException')
    expect(lower.upstreamMessage).toBe('m2')
  })

  it('modelled codes are matched case-insensitively and made canonical', () => {
    expect(parseErrorResponse(400, {}, json({ __type: 'accessdeniedexception' })).code).toBe(
      'AccessDeniedException',
    )
  })

  it('sanitizeErrorCode follows the JS SDK', () => {
    expect(sanitizeErrorCode('FooError,BarError')).toBe('FooError')
    expect(sanitizeErrorCode('FooError:http://x')).toBe('FooError')
    expect(sanitizeErrorCode('aws.protocoltests#FooError')).toBe('FooError')
    expect(sanitizeErrorCode('com.amazonaws.eksauth#InvalidTokenException:http://x,y')).toBe(
      'InvalidTokenException',
    )
    expect(sanitizeErrorCode('')).toBe('UnknownError')
    expect(sanitizeErrorCode('has spaces <b>')).toBe('UnknownError')
  })

  it('empty body -> UnknownError', () => {
    const err = parseErrorResponse(500, {}, '')
    expect(err.code).toBe('UnknownError')
    expect(err.statusCode).toBe(500)
    expect(err.fault).toBe('server')
    expect(err.upstreamMessage).toMatch(/empty error response \(HTTP 500\)/)
  })

  it('non-JSON body is never copied into the message', () => {
    const html = '<html><body>Bad Gateway from proxy secret-internal-host</body></html>'
    const err = parseErrorResponse(502, {}, Buffer.from(html))
    expect(err.code).toBe('UnknownError')
    expect(err.statusCode).toBe(502)
    expect(err.upstreamMessage).toBe('unexpected non-JSON error response (HTTP 502)')
    expect(err.message).not.toContain('secret-internal-host')
  })

  it('non-JSON body keeps the header code', () => {
    const err = parseErrorResponse(
      503,
      { 'x-amzn-errortype': 'ServiceUnavailableException' },
      'oops',
    )
    expect(err.code).toBe('ServiceUnavailableException')
  })

  it('unreadable body', () => {
    const err = parseErrorResponse(503, {}, undefined)
    expect(err.code).toBe('UnknownError')
    expect(err.upstreamMessage).toMatch(/unreadable/)
  })

  it('long messages are capped and control characters removed', () => {
    const err = parseErrorResponse(400, {}, json({ message: `a\nb${'x'.repeat(5000)}` }))
    expect(err.upstreamMessage.length).toBeLessThanOrEqual(515)
    expect(err.upstreamMessage).not.toContain('\n')
  })

  it('request id header variants, in order', () => {
    expect(
      requestIdFrom({ 'x-amzn-requestid': 'a', 'x-amzn-request-id': 'b', 'x-amz-request-id': 'c' }),
    ).toBe('a')
    expect(requestIdFrom({ 'x-amzn-request-id': 'b', 'x-amz-request-id': 'c' })).toBe('b')
    expect(requestIdFrom({ 'x-amz-request-id': 'c' })).toBe('c')
    expect(requestIdFrom({ 'X-Amzn-RequestId': 'd' })).toBe('d')
    expect(requestIdFrom({})).toBeUndefined()
    const err = parseErrorResponse(400, { 'x-amz-request-id': 'c' }, json({ message: 'm' }))
    expect(err.requestId).toBe('c')
    expect(err.message).toBe('[c]: (UnknownError): m, fault: client')
  })

  it('fault is server for 5xx, client otherwise', () => {
    expect(parseErrorResponse(504, {}, '').fault).toBe('server')
    expect(parseErrorResponse(418, {}, '').fault).toBe('client')
  })
})
