import { describe, expect, it } from 'vitest'
import { AgentError } from '../../../src/errors.js'
import type { TokenClaims } from '../../../src/token/parse-token.js'
import { parseToken } from '../../../src/token/parse-token.js'
import { NBF_SKEW_MS, checkTokenTimes } from '../../../src/token/validity.js'

const PARSE = 'Service account token cannot be parsed: '
const CLAIMS = 'Service account token failed basic claim validations: '

const b64 = (v: unknown): string =>
  Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url')

function jwt(header: unknown, claims: unknown, sig = 'c2ln'): string {
  return `${b64(header)}.${b64(claims)}.${sig}`
}

const HEADER = { alg: 'RS256', kid: 'k1' }
const NOW = Date.UTC(2026, 0, 1)
const NOW_S = NOW / 1000

const POD_CLAIMS = {
  aud: ['pods.eks.amazonaws.com'],
  exp: NOW_S + 86400,
  iat: NOW_S,
  nbf: NOW_S,
  iss: 'https://oidc.eks.us-west-2.amazonaws.com/id/EXAMPLE',
  sub: 'system:serviceaccount:team-a:worker',
  'kubernetes.io': {
    namespace: 'team-a',
    pod: { name: 'worker-5f7d8-abcde', uid: '1d2c3b4a' },
    serviceaccount: { name: 'worker', uid: '9f8e7d6c' },
  },
}

function parseError(token: string): AgentError {
  try {
    parseToken(token)
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError)
    return err as AgentError
  }
  throw new Error(`token parsed: ${token}`)
}

function expectMalformed(token: string, detail: string | RegExp): void {
  const e = parseError(token)
  expect(e.statusCode).toBe(400)
  expect(e.code).toBe('MalformedToken')
  if (typeof detail === 'string') expect(e.message).toBe(PARSE + detail)
  else {
    expect(e.message.startsWith(PARSE)).toBe(true)
    expect(e.message.slice(PARSE.length)).toMatch(detail)
  }
}

describe('parseToken: golang-jwt ParseUnverified messages', () => {
  it.each(['', 'abc', 'a.b', 'a.b.c.d', '....'])('%j has an invalid number of segments', (t) => {
    expectMalformed(t, 'token is malformed: token contains an invalid number of segments')
  })

  it('illegal base64 in the header names the byte', () => {
    expectMalformed(
      `abc$.${b64(POD_CLAIMS)}.c2ln`,
      'token is malformed: could not base64 decode header: illegal base64 data at input byte 3',
    )
    expectMalformed(
      `!!!!.${b64(POD_CLAIMS)}.c2ln`,
      'token is malformed: could not base64 decode header: illegal base64 data at input byte 0',
    )
  })

  it('padding is illegal (raw base64url), as in golang-jwt', () => {
    const h = b64({ alg: 'RS256' }) // 20 chars, a '=' makes it padded
    expectMalformed(
      `${h}=.${b64(POD_CLAIMS)}.c2ln`,
      `token is malformed: could not base64 decode header: illegal base64 data at input byte ${h.length}`,
    )
  })

  it('a length of 4n+1 is illegal at the last byte', () => {
    expectMalformed(
      `eyJhb.${b64(POD_CLAIMS)}.c2ln`,
      'token is malformed: could not base64 decode header: illegal base64 data at input byte 4',
    )
  })

  it('illegal base64 in the claims', () => {
    expectMalformed(
      `${b64(HEADER)}.%%%%.c2ln`,
      'token is malformed: could not base64 decode claim: illegal base64 data at input byte 0',
    )
  })

  it('non-JSON header and claims', () => {
    expectMalformed(
      `${b64('not json')}.${b64(POD_CLAIMS)}.c2ln`,
      /^token is malformed: could not JSON decode header: .+/,
    )
    expectMalformed(
      `${b64(HEADER)}.${b64('{"exp":')}.c2ln`,
      /^token is malformed: could not JSON decode claim: .+/,
    )
    expectMalformed(
      `${b64(HEADER)}.${b64('[1,2]')}.c2ln`,
      /^token is malformed: could not JSON decode claim: .+/,
    )
    expectMalformed(
      `${b64('"RS256"')}.${b64(POD_CLAIMS)}.c2ln`,
      /^token is malformed: could not JSON decode header: .+/,
    )
  })

  it('the header is checked before the claims', () => {
    expectMalformed(`${b64('nope')}.%%%%.c2ln`, /could not JSON decode header/)
  })

  it('alg missing or not a string -> unspecified', () => {
    for (const header of [{ typ: 'JWT' }, { alg: 256 }, { alg: null }]) {
      expectMalformed(
        jwt(header, POD_CLAIMS),
        'token is unverifiable: signing method (alg) is unspecified',
      )
    }
  })

  it('alg not registered in golang-jwt -> unavailable', () => {
    for (const alg of ['XX999', 'rs256', '', 'HS1']) {
      expectMalformed(
        jwt({ alg }, POD_CLAIMS),
        'token is unverifiable: signing method (alg) is unavailable',
      )
    }
  })

  it('every registered alg parses', () => {
    for (const alg of ['HS256', 'RS256', 'RS512', 'ES256', 'PS256', 'EdDSA', 'none']) {
      expect(() => parseToken(jwt({ alg }, POD_CLAIMS))).not.toThrow()
    }
  })

  it('exp, nbf or iat of the wrong type -> could not JSON decode claim', () => {
    for (const bad of [{ exp: '1767225600' }, { nbf: 'soon' }, { iat: true }, { exp: [1] }]) {
      expectMalformed(
        jwt(HEADER, { ...POD_CLAIMS, ...bad }),
        /^token is malformed: could not JSON decode claim: /,
      )
    }
  })

  it('iss or sub that is not a string -> could not JSON decode claim', () => {
    for (const bad of [{ iss: 1 }, { sub: { a: 1 } }]) {
      expectMalformed(
        jwt(HEADER, { ...POD_CLAIMS, ...bad }),
        /^token is malformed: could not JSON decode claim: /,
      )
    }
  })

  it('an empty signature segment is refused locally (EKS Auth would refuse it)', () => {
    const e = parseError(jwt(HEADER, POD_CLAIMS, ''))
    expect(e.statusCode).toBe(400)
    expect(e.code).toBe('MalformedToken')
    expect(e.message.startsWith(PARSE)).toBe(true)
  })

  it('never echoes the token in the message', () => {
    const t = jwt({ alg: 'XX' }, { secret: 'do-not-echo' })
    expect(parseError(t).message).not.toContain(t.split('.')[1])
  })
})

describe('parseToken: claims', () => {
  it('reads exp/nbf in ms and the kubernetes.io identity', () => {
    const c = parseToken(jwt(HEADER, POD_CLAIMS))
    expect(c).toEqual({
      expMs: NOW + 86_400_000,
      nbfMs: NOW,
      namespace: 'team-a',
      serviceAccount: 'worker',
      podName: 'worker-5f7d8-abcde',
      podUid: '1d2c3b4a',
    })
  })

  it('falls back to sub system:serviceaccount:NS:SA', () => {
    const c = parseToken(jwt(HEADER, { sub: 'system:serviceaccount:ns2:sa2', exp: NOW_S + 60 }))
    expect(c.namespace).toBe('ns2')
    expect(c.serviceAccount).toBe('sa2')
    expect(c.podName).toBeUndefined()
  })

  it('kubernetes.io wins over sub; sub fills only what is missing', () => {
    const c = parseToken(
      jwt(HEADER, {
        sub: 'system:serviceaccount:from-sub:sa-sub',
        'kubernetes.io': { namespace: 'from-k8s' },
      }),
    )
    expect(c.namespace).toBe('from-k8s')
    expect(c.serviceAccount).toBe('sa-sub')
  })

  it('no identity at all, no exp, no nbf', () => {
    const c = parseToken(jwt(HEADER, { sub: 'someone-else' }))
    expect(c).toEqual({
      expMs: Infinity,
      nbfMs: -Infinity,
      namespace: undefined,
      serviceAccount: undefined,
      podName: undefined,
    })
    expect(parseToken(jwt(HEADER, { exp: null })).expMs).toBe(Infinity)
  })
})

describe('checkTokenTimes', () => {
  const claims = (over: Partial<TokenClaims>): TokenClaims => ({
    expMs: Infinity,
    nbfMs: -Infinity,
    namespace: undefined,
    serviceAccount: undefined,
    podName: undefined,
    podUid: undefined,
    ...over,
  })

  function timesError(c: TokenClaims, now: number): AgentError {
    try {
      checkTokenTimes(c, now)
    } catch (err) {
      expect(err).toBeInstanceOf(AgentError)
      return err as AgentError
    }
    throw new Error('claims accepted')
  }

  it('accepts a token inside its window', () => {
    expect(() => checkTokenTimes(claims({ expMs: NOW + 1, nbfMs: NOW }), NOW)).not.toThrow()
    expect(() => checkTokenTimes(claims({}), NOW)).not.toThrow()
  })

  it('exp == now counts as expired', () => {
    const e = timesError(claims({ expMs: NOW }), NOW)
    expect(e.message).toBe(`${CLAIMS}token is expired`)
    expect(e.statusCode).toBe(400)
    expect(e.code).toBe('InvalidTokenClaims')
    expect(timesError(claims({ expMs: NOW - 1 }), NOW).message).toBe(`${CLAIMS}token is expired`)
  })

  it('now < nbf - skew allowance is not valid yet; at nbf - allowance it is fine', () => {
    expect(NBF_SKEW_MS).toBeGreaterThanOrEqual(0)
    expect(NBF_SKEW_MS).toBeLessThanOrEqual(60_000)
    const e = timesError(claims({ nbfMs: NOW + NBF_SKEW_MS + 1 }), NOW)
    expect(e.message).toBe(`${CLAIMS}token is not valid yet`)
    expect(e.statusCode).toBe(400)
    expect(e.code).toBe('InvalidTokenClaims')
    expect(() => checkTokenTimes(claims({ nbfMs: NOW + NBF_SKEW_MS }), NOW)).not.toThrow()
    expect(() => checkTokenTimes(claims({ nbfMs: NOW }), NOW)).not.toThrow()
  })

  it('both errors are joined with ", "', () => {
    const e = timesError(claims({ expMs: NOW - 1000, nbfMs: NOW + NBF_SKEW_MS + 1000 }), NOW)
    expect(e.message).toBe(`${CLAIMS}token is expired, token is not valid yet`)
  })

  it('works end to end with parsed claims', () => {
    const c = parseToken(jwt(HEADER, { ...POD_CLAIMS, exp: NOW_S, nbf: NOW_S - 60 }))
    expect(timesError(c, NOW).message).toBe(`${CLAIMS}token is expired`)
    expect(() => checkTokenTimes(c, NOW - 1)).not.toThrow()
  })
})
