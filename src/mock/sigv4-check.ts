// SigV4 header authentication for the mock EKS Auth server: parses the Authorization header,
// checks its scope, and, when the secret for the access key is known, recomputes the signature
// with @smithy/signature-v4 and compares it in constant time. Failures map to AWS's 403 answers.
// Over 250 lines: every check AWS makes, in AWS's order, with AWS's messages, is one contract.

import { createHash, timingSafeEqual } from 'node:crypto'
import { Hash } from '@smithy/hash-node'
import { SignatureV4 } from '@smithy/signature-v4'

export const SIGV4_ALGORITHM = 'AWS4-HMAC-SHA256'

/** AWS error codes for authentication failures (all HTTP 403). */
export type SigV4ErrorCode =
  | 'MissingAuthenticationTokenException'
  | 'IncompleteSignatureException'
  | 'InvalidSignatureException'
  | 'UnrecognizedClientException'

export interface ParsedAuthorization {
  accessKeyId: string
  /** `YYYYMMDD` */
  date: string
  region: string
  service: string
  /** Lowercase header names, in the order given. */
  signedHeaders: string[]
  /** Lowercase hex. */
  signature: string
}

/** The parts of a received request the check needs. Header names are lowercase (node:http). */
export interface SigV4Request {
  method: string
  /** Path with optional `?query`, as received. */
  path: string
  headers: Record<string, string | string[] | undefined>
  body: Uint8Array | string
}

export interface NodeCredential {
  accessKeyId: string
  secretAccessKey: string
}

export interface SigV4CheckOptions {
  /** Signing name the credential scope must carry. Default `eks-auth`. */
  service?: string
  /** Region the credential scope must carry; any region when absent. */
  region?: string
  /** Known node keys. When set, signatures are fully verified and unknown keys refused. */
  credentials?: readonly NodeCredential[]
  /** The server's time, epoch ms, for the signing-date check. Default Date.now. */
  now?: () => number
}

/** How far a signing date may be from the server's time, as most AWS services allow. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000

export type SigV4CheckResult =
  | { ok: true; accessKeyId: string; verified: boolean }
  | { ok: false; status: 403; code: SigV4ErrorCode; message: string; accessKeyId?: string }

const AUTH_RE =
  /^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-fA-F]+)\s*$/
const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/
const INVALID_SIGNATURE_MESSAGE =
  'The request signature we calculated does not match the signature you provided. ' +
  'Check your AWS Secret Access Key and signing method. Consult the service documentation for details.'

/**
 * Parse an `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
 * value. Returns a message describing what is missing when it is malformed.
 */
export function parseAuthorization(value: string): ParsedAuthorization | { error: string } {
  const m = AUTH_RE.exec(value.trim())
  if (m === null) {
    if (!value.trim().startsWith(`${SIGV4_ALGORITHM} `)) {
      return { error: `Authorization header must use the ${SIGV4_ALGORITHM} algorithm.` }
    }
    const missing = ['Credential', 'SignedHeaders', 'Signature'].filter(
      (p) => !new RegExp(`\\b${p}=`).test(value),
    )
    return {
      error:
        missing.length > 0
          ? missing.map((p) => `Authorization header requires '${p}' parameter.`).join(' ')
          : `Authorization header is not well-formed: expected ` +
            `'${SIGV4_ALGORITHM} Credential=..., SignedHeaders=..., Signature=...'.`,
    }
  }
  const scope = (m[1] as string).split('/')
  if (scope.length !== 5 || scope.some((s) => s === '') || scope[4] !== 'aws4_request') {
    return {
      error:
        "Authorization header requires 'Credential' parameter of the form " +
        "'AKID/YYYYMMDD/region/service/aws4_request'.",
    }
  }
  const [accessKeyId, date, region, service] = scope as [string, string, string, string]
  if (!/^\d{8}$/.test(date)) {
    return { error: `Credential date must be YYYYMMDD, got '${date}'.` }
  }
  const signedHeaders = (m[2] as string).toLowerCase().split(';')
  if (signedHeaders.some((h) => h === '')) {
    return { error: "Authorization header has an empty name in 'SignedHeaders'." }
  }
  return {
    accessKeyId,
    date,
    region,
    service,
    signedHeaders,
    signature: (m[3] as string).toLowerCase(),
  }
}

/** Checks request signatures; one instance per server (it keeps the key table and signers). */
export class SigV4Checker {
  readonly #service: string
  readonly #region: string | undefined
  readonly #secrets: Map<string, string> | undefined
  readonly #now: () => number

  constructor(options: SigV4CheckOptions = {}) {
    this.#now = options.now ?? Date.now
    this.#service = options.service ?? 'eks-auth'
    this.#region = options.region
    this.#secrets =
      options.credentials === undefined
        ? undefined
        : new Map(options.credentials.map((c) => [c.accessKeyId, c.secretAccessKey]))
  }

  /** Whether signatures are fully verified (node keys are configured). */
  get verifies(): boolean {
    return this.#secrets !== undefined
  }

  async check(req: SigV4Request): Promise<SigV4CheckResult> {
    const auth = headerValue(req.headers.authorization)
    if (auth === undefined || auth.trim() === '') {
      return fail('MissingAuthenticationTokenException', 'Missing Authentication Token')
    }
    const parsed = parseAuthorization(auth)
    if ('error' in parsed) return fail('IncompleteSignatureException', parsed.error)
    const { accessKeyId } = parsed
    const failK = (code: SigV4ErrorCode, message: string): SigV4CheckResult =>
      fail(code, message, accessKeyId)

    for (const required of ['host', 'x-amz-date']) {
      if (!parsed.signedHeaders.includes(required)) {
        return failK(
          'IncompleteSignatureException',
          `'${required}' must be a 'SignedHeader' in the AWS Authorization.`,
        )
      }
    }
    for (const name of parsed.signedHeaders) {
      if (headerValue(req.headers[name]) === undefined) {
        return failK(
          'IncompleteSignatureException',
          `Signed header '${name}' is not present in the request.`,
        )
      }
    }
    const amzDate = headerValue(req.headers['x-amz-date']) as string
    const signingDate = parseAmzDate(amzDate)
    if (signingDate === undefined) {
      return failK(
        'IncompleteSignatureException',
        `X-Amz-Date must be in the ISO-8601 basic format YYYYMMDD'T'HHMMSS'Z', got '${amzDate}'.`,
      )
    }
    if (amzDate.slice(0, 8) !== parsed.date) {
      return failK(
        'InvalidSignatureException',
        `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: ` +
          `'${parsed.date}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`,
      )
    }
    // AWS refuses a signature whose date is more than 5 minutes from its own clock.
    const nowMs = this.#now()
    const skewMs = signingDate.getTime() - nowMs
    if (Math.abs(skewMs) > MAX_CLOCK_SKEW_MS) {
      const at = (ms: number) => new Date(ms).toISOString().replace(/[-:]|\.\d{3}/g, '')
      return failK(
        'InvalidSignatureException',
        skewMs < 0
          ? `Signature expired: ${amzDate} is now earlier than ${at(nowMs - MAX_CLOCK_SKEW_MS)} (${at(nowMs)} - 5 min.)`
          : `Signature not yet current: ${amzDate} is still later than ${at(nowMs + MAX_CLOCK_SKEW_MS)} (${at(nowMs)} + 5 min.)`,
      )
    }
    if (parsed.service !== this.#service) {
      return failK(
        'InvalidSignatureException',
        `Credential should be scoped to correct service: '${this.#service}'.`,
      )
    }
    if (this.#region !== undefined && parsed.region !== this.#region) {
      return failK(
        'InvalidSignatureException',
        `Credential should be scoped to a valid region, not '${parsed.region}'. ` +
          `This endpoint serves '${this.#region}'.`,
      )
    }
    if (this.#secrets === undefined) return { ok: true, accessKeyId, verified: false }

    const secret = this.#secrets.get(accessKeyId)
    if (secret === undefined) {
      return failK(
        'UnrecognizedClientException',
        'The security token included in the request is invalid.',
      )
    }
    const expected = await computeSignature(req, parsed, secret, signingDate)
    if (expected === undefined || !equalHex(expected, parsed.signature)) {
      return failK('InvalidSignatureException', INVALID_SIGNATURE_MESSAGE)
    }
    return { ok: true, accessKeyId, verified: true }
  }
}

/**
 * Recompute the signature over the signed headers only. Returns undefined when the signed
 * payload hash does not match the body.
 */
async function computeSignature(
  req: SigV4Request,
  parsed: ParsedAuthorization,
  secretAccessKey: string,
  signingDate: Date,
): Promise<string | undefined> {
  const signed = new Set(parsed.signedHeaders)
  const headers: Record<string, string> = {}
  for (const name of parsed.signedHeaders) {
    // The signer sets these itself from signingDate and the session token.
    if (name === 'x-amz-date' || name === 'x-amz-security-token') continue
    headers[name] = headerValue(req.headers[name]) as string
  }
  const contentSha = headers['x-amz-content-sha256']
  if (contentSha !== undefined) {
    const actual = createHash('sha256').update(req.body).digest('hex')
    if (contentSha.toLowerCase() !== actual) return undefined
  }
  const sessionToken = signed.has('x-amz-security-token')
    ? headerValue(req.headers['x-amz-security-token'])
    : undefined
  const signer = new SignatureV4({
    service: parsed.service,
    region: parsed.region,
    credentials: { accessKeyId: parsed.accessKeyId, secretAccessKey, sessionToken },
    sha256: Hash.bind(null, 'sha256'),
    applyChecksum: false,
  })
  const q = req.path.indexOf('?')
  const path = q === -1 ? req.path : req.path.slice(0, q)
  const query: Record<string, string | string[]> = {}
  if (q !== -1) {
    for (const [k, v] of new URLSearchParams(req.path.slice(q + 1))) {
      const prev = query[k]
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]
    }
  }
  const out = await signer.sign(
    {
      method: req.method,
      protocol: 'http:',
      hostname: headers.host ?? '',
      path,
      query,
      headers,
      body: req.body,
    },
    { signingDate, signableHeaders: signed },
  )
  const authz = out.headers.authorization ?? ''
  const at = authz.lastIndexOf('Signature=')
  return at === -1 ? undefined : authz.slice(at + 'Signature='.length)
}

function fail(code: SigV4ErrorCode, message: string, accessKeyId?: string): SigV4CheckResult {
  return accessKeyId === undefined
    ? { ok: false, status: 403, code, message }
    : { ok: false, status: 403, code, message, accessKeyId }
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v
}

function parseAmzDate(s: string): Date | undefined {
  const m = AMZ_DATE_RE.exec(s)
  if (m === null) return undefined
  const [, y, mo, d, h, mi, se] = m.map(Number) as number[]
  const ms = Date.UTC(y as number, (mo as number) - 1, d, h, mi, se)
  return Number.isFinite(ms) ? new Date(ms) : undefined
}

function equalHex(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  return x.length === y.length && timingSafeEqual(x, y)
}
