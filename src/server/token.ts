// Local, unverified parsing of a pod's service-account token, with the reference agent's checks and
// messages (golang-jwt v5.2.2 ParseUnverified + Validator without options). Runs only on a cache
// miss: a hit is keyed by the exact token string, whose claims were checked when it was cached.

import { RequestError } from '../errors.js'

export interface TokenClaims {
  /** `exp` in epoch ms; Infinity when the token has none. */
  expMs: number
  /** `nbf` in epoch ms; -Infinity when the token has none. */
  nbfMs: number
  namespace: string | undefined
  serviceAccount: string | undefined
  podName: string | undefined
}

/** Algorithms golang-jwt has registered; any other `alg` is "unavailable" there. */
const KNOWN_ALGS = new Set([
  'HS256',
  'HS384',
  'HS512',
  'RS256',
  'RS384',
  'RS512',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
  'none',
])

const BASE64URL_RAW = /^[A-Za-z0-9_-]*$/
const SIGNATURE = /^[A-Za-z0-9_=-]+$/

function malformed(detail: string): RequestError {
  return new RequestError(
    'MalformedToken',
    400,
    `Service account token cannot be parsed: token is malformed: ${detail}`,
  )
}

function decodeSegment(seg: string, what: 'header' | 'claim'): Record<string, unknown> {
  if (!BASE64URL_RAW.test(seg) || seg.length % 4 === 1) {
    const bad = seg.search(/[^A-Za-z0-9_-]/)
    const at = bad === -1 ? seg.length - 1 : bad
    throw malformed(`could not base64 decode ${what}: illegal base64 data at input byte ${at}`)
  }
  const text = Buffer.from(seg, 'base64url').toString('utf8')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw malformed(`could not JSON decode ${what}: invalid JSON`)
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw malformed(`could not JSON decode ${what}: expected a JSON object`)
  }
  return value as Record<string, unknown>
}

function numericDate(claims: Record<string, unknown>, name: string): number | undefined {
  const v = claims[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw malformed(`could not JSON decode claim: "${name}" must be a number (NumericDate)`)
  }
  return v * 1000
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined
}

/** Parse a token without verifying its signature. Throws a 400 RequestError when it is not a JWT. */
export function parseToken(token: string): TokenClaims {
  const parts = token.split('.')
  if (parts.length !== 3) throw malformed('token contains an invalid number of segments')
  const [h, c, s] = parts as [string, string, string]
  const header = decodeSegment(h, 'header')
  const claims = decodeSegment(c, 'claim')
  if (typeof header.alg !== 'string') {
    throw new RequestError(
      'MalformedToken',
      400,
      'Service account token cannot be parsed: token is unverifiable: signing method (alg) is unspecified',
    )
  }
  if (!KNOWN_ALGS.has(header.alg)) {
    throw new RequestError(
      'MalformedToken',
      400,
      'Service account token cannot be parsed: token is unverifiable: signing method (alg) is unavailable',
    )
  }
  // EKS Auth's JwtToken pattern requires a non-empty signature; refuse here instead of upstream.
  if (!SIGNATURE.test(s)) throw malformed('token signature is missing or not base64url')
  for (const name of ['iss', 'sub', 'jti'] as const) {
    const v = claims[name]
    if (v !== undefined && v !== null && typeof v !== 'string') {
      throw malformed(`could not JSON decode claim: "${name}" must be a string`)
    }
  }
  const exp = numericDate(claims, 'exp')
  const nbf = numericDate(claims, 'nbf')
  numericDate(claims, 'iat')

  const k8s = obj(claims['kubernetes.io'])
  let namespace = str(k8s?.namespace)
  let serviceAccount = str(obj(k8s?.serviceaccount)?.name)
  if (namespace === undefined || serviceAccount === undefined) {
    const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(str(claims.sub) ?? '')
    namespace ??= m?.[1]
    serviceAccount ??= m?.[2]
  }
  return {
    expMs: exp ?? Infinity,
    nbfMs: nbf ?? -Infinity,
    namespace,
    serviceAccount,
    podName: str(obj(k8s?.pod)?.name),
  }
}

/**
 * Clock-skew allowance for `nbf`: a token the API server issued a moment ago must not be refused
 * because the node's clock is a little behind (the reference's newer local validation allows 1
 * minute). `exp` stays strict, as in the reference.
 */
export const NBF_SKEW_MS = 60_000

/** The reference's claim validation: expired when now >= exp, not yet valid when now < nbf (- skew). */
export function checkTokenTimes(claims: TokenClaims, nowMs: number): void {
  const errs: string[] = []
  if (nowMs >= claims.expMs) errs.push('token is expired')
  if (nowMs < claims.nbfMs - NBF_SKEW_MS) errs.push('token is not valid yet')
  if (errs.length > 0) {
    throw new RequestError(
      'InvalidTokenClaims',
      400,
      `Service account token failed basic claim validations: ${errs.join(', ')}`,
    )
  }
}
