// Local, unverified parsing of a pod's projected service-account token, with the reference agent's
// checks and messages (golang-jwt v5.2.2 ParseUnverified + Validator without options). Runs only
// on a miss: a cache hit needs the exact token string, whose claims were read when it was cached.

import { MalformedTokenError } from '../errors.js'

/** What the agent reads from a token: its times, and the pod it names (kubernetes.io claims). */
export interface TokenClaims {
  /** `exp` in epoch ms; Infinity when the token has none. */
  readonly expMs: number
  /** `nbf` in epoch ms; -Infinity when the token has none. */
  readonly nbfMs: number
  readonly namespace: string | undefined
  readonly serviceAccount: string | undefined
  readonly podName: string | undefined
  readonly podUid: string | undefined
}

/** The pod a token names, from its claims. */
export type KubernetesSubject = Pick<
  TokenClaims,
  'namespace' | 'serviceAccount' | 'podName' | 'podUid'
>

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
const SERVICE_ACCOUNT_SUBJECT = /^system:serviceaccount:([^:]+):([^:]+)$/

function malformed(detail: string): MalformedTokenError {
  return new MalformedTokenError(`token is malformed: ${detail}`)
}

function decodeSegment(seg: string, what: 'header' | 'claim'): Record<string, unknown> {
  if (!BASE64URL_RAW.test(seg) || seg.length % 4 === 1) {
    const bad = seg.search(/[^A-Za-z0-9_-]/)
    const at = bad === -1 ? seg.length - 1 : bad
    throw malformed(`could not base64 decode ${what}: illegal base64 data at input byte ${at}`)
  }
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(seg, 'base64url').toString('utf8'))
  } catch {
    throw malformed(`could not JSON decode ${what}: invalid JSON`)
  }
  const object = asObject(value)
  if (object === undefined) throw malformed(`could not JSON decode ${what}: expected a JSON object`)
  return object
}

function numericDate(claims: Record<string, unknown>, name: string): number | undefined {
  const v = claims[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw malformed(`could not JSON decode claim: "${name}" must be a number (NumericDate)`)
  }
  return v * 1000
}

function nonEmpty(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined
}

function asObject(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined
}

/**
 * The pod a token's claims name: the `kubernetes.io` claim (kubernetes/kubernetes
 * pkg/serviceaccount/claims.go), with namespace and service account falling back to `sub`
 * (`system:serviceaccount:NAMESPACE:NAME`). Absent parts are undefined.
 */
export function kubernetesSubject(claims: Record<string, unknown>): KubernetesSubject {
  const k8s = asObject(claims['kubernetes.io'])
  let namespace = nonEmpty(k8s?.namespace)
  let serviceAccount = nonEmpty(asObject(k8s?.serviceaccount)?.name)
  if (namespace === undefined || serviceAccount === undefined) {
    const m = SERVICE_ACCOUNT_SUBJECT.exec(nonEmpty(claims.sub) ?? '')
    namespace ??= m?.[1]
    serviceAccount ??= m?.[2]
  }
  const pod = asObject(k8s?.pod)
  return { namespace, serviceAccount, podName: nonEmpty(pod?.name), podUid: nonEmpty(pod?.uid) }
}

/** Parse a token without verifying its signature. Throws MalformedTokenError when it is no JWT. */
export function parseToken(token: string): TokenClaims {
  const parts = token.split('.')
  if (parts.length !== 3) throw malformed('token contains an invalid number of segments')
  const [h, c, s] = parts as [string, string, string]
  const header = decodeSegment(h, 'header')
  const claims = decodeSegment(c, 'claim')
  if (typeof header.alg !== 'string') {
    throw new MalformedTokenError('token is unverifiable: signing method (alg) is unspecified')
  }
  if (!KNOWN_ALGS.has(header.alg)) {
    throw new MalformedTokenError('token is unverifiable: signing method (alg) is unavailable')
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
  return { expMs: exp ?? Infinity, nbfMs: nbf ?? -Infinity, ...kubernetesSubject(claims) }
}
