// Pure parsing of EKS Auth answers (protocol.md 1.4, 1.5): a 2xx body into a SourceAnswer, an
// error answer into an UpstreamError. No I/O here; the client reads the (size-capped) body.
// Messages never contain credential values, and never a non-JSON body (it may be a proxy's page).

import { InvalidUpstreamResponseError, UpstreamError } from '../errors.js'
import { secretRedactor } from '../util/redact.js'
import { EKS_AUTH_ERROR_CODES, isIrrecoverableEksAuthCode } from './error-codes.js'
import type { SourceAnswer } from './types.js'

/** Largest response body the client reads, in bytes. */
export const MAX_RESPONSE_BYTES = 64 * 1024

/** Longest upstream error message kept, in characters. */
export const MAX_UPSTREAM_MESSAGE_CHARS = 512

/** Response headers as undici and node:http give them (names lower-case). */
export type ResponseHeaders = Readonly<Record<string, string | string[] | undefined>>

/** The modelled codes keyed by lower-case name, for matching. */
const MODELLED_CODES: ReadonlyMap<string, string> = new Map(
  EKS_AUTH_ERROR_CODES.map((c) => [c.toLowerCase(), c]),
)

/** Error codes end up in bodies, logs and metric labels: keep them short and plain. */
const CODE_SYNTAX = /^[A-Za-z0-9_.-]{1,100}$/

const decoder = new TextDecoder('utf-8', { fatal: false })

/** Case-insensitive header lookup; the first value when repeated. */
export function getHeader(headers: ResponseHeaders, name: string): string | undefined {
  let v = headers[name]
  if (v === undefined) {
    for (const key in headers) {
      if (key.toLowerCase() === name) {
        v = headers[key]
        break
      }
    }
  }
  if (Array.isArray(v)) v = v[0]
  return v
}

/** The AWS request id: `x-amzn-requestid`, then `x-amzn-request-id`, then `x-amz-request-id`. */
export function requestIdFrom(headers: ResponseHeaders): string | undefined {
  for (const name of ['x-amzn-requestid', 'x-amzn-request-id', 'x-amz-request-id']) {
    const v = getHeader(headers, name)?.trim()
    if (v !== undefined && v !== '') return v.length > 128 ? v.slice(0, 128) : v
  }
  return undefined
}

/**
 * The JS SDK's error code sanitiser: text before the first `,`, then before the first `:`, then
 * after the first `#`. Modelled codes are matched case-insensitively and returned canonical;
 * anything empty or not a plain identifier becomes `UnknownError`.
 */
export function sanitizeErrorCode(raw: string | number): string {
  let v = String(raw)
  if (v.includes(',')) v = v.slice(0, v.indexOf(','))
  if (v.includes(':')) v = v.slice(0, v.indexOf(':'))
  if (v.includes('#')) v = v.slice(v.indexOf('#') + 1)
  v = v.trim()
  if (!CODE_SYNTAX.test(v)) return 'UnknownError'
  return MODELLED_CODES.get(v.toLowerCase()) ?? v
}

function findKey(obj: Record<string, unknown>, lowerName: string): unknown {
  if (lowerName in obj) return obj[lowerName]
  for (const key of Object.keys(obj)) {
    if (key.toLowerCase() === lowerName) return obj[key]
  }
  return undefined
}

/** An upstream's message with control characters out and its length capped: it reaches logs and pods. */
export function cleanMessage(s: string): string {
  // eslint-disable-next-line no-control-regex
  let v = s.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim()
  if (v.length > MAX_UPSTREAM_MESSAGE_CHARS) v = `${v.slice(0, MAX_UPSTREAM_MESSAGE_CHARS)}...`
  return v
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Builds the UpstreamError for a non-2xx answer. `body` is the raw body, or `undefined` when it
 * could not be read (too large, reset, timed out): the status and headers still tell the story.
 * `secrets` are what the request carried (the pod's
 * token, the node's session token): any piece of them the answer quotes is cut out of the code,
 * message and request id, which reach error bodies and logs.
 */
export function parseErrorResponse(
  statusCode: number,
  headers: ResponseHeaders,
  body: Uint8Array | string | undefined,
  secrets: readonly (string | undefined)[] = [],
): UpstreamError {
  const redact = secretRedactor(secrets)
  const rawRequestId = requestIdFrom(headers)
  const requestId = rawRequestId === undefined ? undefined : redact(rawRequestId)
  const headerType = getHeader(headers, 'x-amzn-errortype')

  let code: string | undefined =
    headerType !== undefined && headerType.trim() !== '' ? sanitizeErrorCode(headerType) : undefined
  let message: string | undefined

  const text =
    body === undefined ? undefined : typeof body === 'string' ? body : decoder.decode(body)
  if (text === undefined) {
    message = `unreadable error response (HTTP ${statusCode})`
  } else if (text.trim() === '') {
    message = `empty error response (HTTP ${statusCode})`
  } else {
    let parsed: unknown
    let isJson = true
    try {
      parsed = JSON.parse(text)
    } catch {
      isJson = false
    }
    if (!isJson) {
      message = `unexpected non-JSON error response (HTTP ${statusCode})`
    } else if (isObject(parsed)) {
      if (code === undefined) {
        for (const key of ['code', '__type']) {
          const raw = findKey(parsed, key)
          if (typeof raw === 'string' || typeof raw === 'number') {
            code = sanitizeErrorCode(raw)
            break
          }
        }
      }
      const m = findKey(parsed, 'message')
      if (typeof m === 'string' && m.trim() !== '') message = cleanMessage(redact(m))
    }
  }
  if (code === undefined || redact(code) !== code) code = 'UnknownError'

  return new UpstreamError({
    statusCode,
    code,
    message: message ?? `no error message (HTTP ${statusCode})`,
    requestId,
    irrecoverable: isIrrecoverableEksAuthCode(code, statusCode),
  })
}

function invalid(what: string): InvalidUpstreamResponseError {
  return new InvalidUpstreamResponseError(`invalid response from EKS Auth: ${what}`)
}

function typeName(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v
}

function requireObject(parent: Record<string, unknown>, key: string, path: string) {
  const v = parent[key]
  if (v === undefined) throw invalid(`${path} is missing`)
  if (!isObject(v)) throw invalid(`${path} must be an object, got ${typeName(v)}`)
  return v
}

function requireString(parent: Record<string, unknown>, key: string, path: string): string {
  const v = parent[key]
  if (v === undefined) throw invalid(`${path} is missing`)
  if (typeof v !== 'string') throw invalid(`${path} must be a string, got ${typeName(v)}`)
  if (v === '') throw invalid(`${path} is empty`)
  return v
}

function optionalString(parent: unknown, key: string): string | undefined {
  if (!isObject(parent)) return undefined
  const v = parent[key]
  return typeof v === 'string' && v !== '' ? v : undefined
}

/** The 12-digit account id (5th `:` field) of an ARN, or undefined when it is not an ARN. */
export function accountIdFromArn(arn: string): string | undefined {
  const parts = arn.split(':')
  if (parts.length < 6 || parts[0] !== 'arn' || parts[1] === '' || parts[2] === '') return undefined
  const account = parts[4] as string
  return /^\d{12}$/.test(account) ? account : undefined
}

/**
 * Parses a 2xx body into a SourceAnswer. Required: `credentials.accessKeyId`, `.secretAccessKey`,
 * `.sessionToken` (non-empty strings), `credentials.expiration` (a finite JSON number, epoch
 * seconds, fractional allowed) and `assumedRoleUser.arn` (an ARN with a 12-digit account id).
 * Optional and informational (ignored when absent or not strings): `podIdentityAssociation.
 * associationId`, `subject.namespace`, `subject.serviceAccount`. Throws
 * InvalidUpstreamResponseError naming the first bad field, never its value.
 */
export function parseSuccessBody(body: Uint8Array | string): SourceAnswer {
  const text = typeof body === 'string' ? body : decoder.decode(body)
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw invalid('the body is not JSON')
  }
  if (!isObject(parsed)) throw invalid(`the body must be a JSON object, got ${typeName(parsed)}`)

  const creds = requireObject(parsed, 'credentials', 'credentials')
  const accessKeyId = requireString(creds, 'accessKeyId', 'credentials.accessKeyId')
  const secretAccessKey = requireString(creds, 'secretAccessKey', 'credentials.secretAccessKey')
  const sessionToken = requireString(creds, 'sessionToken', 'credentials.sessionToken')
  const expiration = creds.expiration
  if (expiration === undefined) throw invalid('credentials.expiration is missing')
  if (typeof expiration !== 'number') {
    throw invalid(
      `credentials.expiration must be a number (epoch seconds), got ${typeName(expiration)}`,
    )
  }
  if (!Number.isFinite(expiration) || expiration <= 0) {
    throw invalid('credentials.expiration is not a positive finite number')
  }

  const user = requireObject(parsed, 'assumedRoleUser', 'assumedRoleUser')
  const assumedRoleArn = requireString(user, 'arn', 'assumedRoleUser.arn')
  const accountId = accountIdFromArn(assumedRoleArn)
  if (accountId === undefined) {
    throw invalid('assumedRoleUser.arn is not an ARN with a 12-digit account id')
  }

  return {
    credentials: {
      accessKeyId,
      secretAccessKey,
      sessionToken,
      accountId,
      expirationMs: Math.round(expiration * 1000),
      assumedRoleArn,
    },
    association: {
      id: optionalString(parsed.podIdentityAssociation, 'associationId'),
      namespace: optionalString(parsed.subject, 'namespace'),
      serviceAccount: optionalString(parsed.subject, 'serviceAccount'),
    },
    issuedBy: 'eks-auth',
  }
}
