// Every failure the agent answers with is an AgentError: a stable `code` (the JSON body's `Code`),
// an HTTP `statusCode`, and a message that is safe to show a pod (never a token or a secret).
// One class per condition; the status of each of the agent's own codes is set in STATUS alone.

/** The agent's own codes and their HTTP status. Upstream errors carry the upstream's code. */
const STATUS = {
  MissingToken: 400,
  MalformedToken: 400,
  InvalidTokenClaims: 400,
  InvalidTokenSignature: 400,
  InvalidTokenIssuer: 400,
  InvalidTokenAudience: 400,
  TokenNotBoundToPod: 400,
  AccessDenied: 403,
  NotFound: 404,
  NoAssociation: 404,
  MethodNotAllowed: 405,
  BadRequest: 400,
  RequestTimeout: 408,
  PayloadTooLarge: 413,
  ExpectationFailed: 417,
  RequestHeaderFieldsTooLarge: 431,
  TooManyRequests: 429,
  UpstreamUnreachable: 502,
  UpstreamTimeout: 504,
  UpstreamThrottled: 503,
  InvalidUpstreamResponse: 502,
  NodeCredentialsUnavailable: 500,
  InternalError: 500,
} as const

export type AgentErrorCode = keyof typeof STATUS

/** Every code the agent itself produces (the README's error table lists each one). */
export const AGENT_ERROR_CODES = Object.keys(STATUS) as readonly AgentErrorCode[]

export class AgentError extends Error {
  /** Value of the `Code` field of the JSON error body. */
  readonly code: string
  /** HTTP status the agent answers with. */
  readonly statusCode: number
  /** Seconds for the `Retry-After` header of a 429 or 503 (default 1; see retryAfterSeconds). */
  readonly retryAfterSeconds: number | undefined

  constructor(code: string, statusCode: number, message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.statusCode = statusCode
    this.retryAfterSeconds = options?.retryAfterSeconds
  }
}

interface ErrorOptions {
  cause?: unknown
  retryAfterSeconds?: number
}

/**
 * The one rule for `Retry-After`: a wait in ms as whole seconds, at least 1 (a client must not
 * come back at once) and at most 60 (no SDK reads it; it tells a person reading the answer).
 */
export function retryAfterSeconds(waitMs: number): number {
  return Math.min(60, Math.max(1, Math.ceil(waitMs / 1000)))
}

/**
 * An error of the agent's own. Each subclass names its condition's code in `static code`; the
 * status follows from STATUS.
 */
abstract class LocalError extends AgentError {
  static readonly code: AgentErrorCode

  constructor(message: string, options?: ErrorOptions) {
    const { code } = new.target as unknown as { code: AgentErrorCode }
    super(code, STATUS[code], message, options)
  }
}

export class MissingTokenError extends LocalError {
  static override readonly code: AgentErrorCode = 'MissingToken'
  constructor() {
    super('Service account token cannot be empty')
  }
}

/** Not a JWT the agent can read; `reason` continues golang-jwt's text (`token is malformed: ...`). */
export class MalformedTokenError extends LocalError {
  static override readonly code: AgentErrorCode = 'MalformedToken'
  constructor(reason: string) {
    super(`Service account token cannot be parsed: ${reason}`)
  }
}

/** The token's times (`exp`, `nbf`) refuse it now. */
export class InvalidTokenClaimsError extends LocalError {
  static override readonly code: AgentErrorCode = 'InvalidTokenClaims'
  constructor(problems: readonly string[]) {
    super(`Service account token failed basic claim validations: ${problems.join(', ')}`)
  }
}

/** With --token-jwks: the token's signature does not verify against the issuer's pinned keys. */
export class InvalidTokenSignatureError extends LocalError {
  static override readonly code: AgentErrorCode = 'InvalidTokenSignature'
  constructor(reason: string) {
    super(`Service account token failed signature verification: ${reason}`)
  }
}

/** With --token-jwks: the token's `iss` is not --token-issuer. */
export class InvalidTokenIssuerError extends LocalError {
  static override readonly code: AgentErrorCode = 'InvalidTokenIssuer'
  constructor(expected: string) {
    super(`Service account token was not issued by the cluster's issuer (expected "${expected}")`)
  }
}

/** With --token-jwks: the token's `aud` does not include --token-audience. */
export class InvalidTokenAudienceError extends LocalError {
  static override readonly code: AgentErrorCode = 'InvalidTokenAudience'
  constructor(expected: string) {
    super(`Service account token is not meant for this agent (audience must include "${expected}")`)
  }
}

/** With --token-jwks: a verified token that names no pod, service account or namespace. */
export class TokenNotBoundToPodError extends LocalError {
  static override readonly code: AgentErrorCode = 'TokenNotBoundToPod'
  constructor(missing: string) {
    super(
      `Service account token is not bound to a pod (${missing}): use a projected token, as the pod identity webhook mounts`,
    )
  }
}

/** The Host header names none of the addresses the agent serves on (DNS rebinding). */
export class ForeignHostError extends LocalError {
  static override readonly code: AgentErrorCode = 'AccessDenied'
  constructor(allowed: readonly string[], host: string) {
    super(
      `Access Denied. Called agent through invalid address, please use either [${allowed.join(' ')}] address not ${host.slice(0, 255)}`,
    )
  }
}

/** The request was relayed by a proxy (X-Forwarded-For or Forwarded). */
export class RelayedRequestError extends LocalError {
  static override readonly code: AgentErrorCode = 'AccessDenied'
  constructor() {
    super(
      'Access Denied. Requests relayed through a proxy (X-Forwarded-For or Forwarded header) are not accepted',
    )
  }
}

/** The associations file names no role for the token's namespace and service account. */
export class NoAssociationError extends LocalError {
  static override readonly code: AgentErrorCode = 'NoAssociation'
  constructor(namespace: string | undefined, serviceAccount: string | undefined) {
    super(
      namespace === undefined || serviceAccount === undefined
        ? 'The token names no namespace and service account, so no association applies to it'
        : `No association for namespace "${namespace}", service account "${serviceAccount}" in the associations file`,
    )
  }
}

export class NotFoundError extends LocalError {
  static override readonly code: AgentErrorCode = 'NotFound'
  constructor() {
    super('404 page not found')
  }
}

export class MethodNotAllowedError extends LocalError {
  static override readonly code: AgentErrorCode = 'MethodNotAllowed'
  constructor() {
    super('Method not allowed: use GET /v1/credentials')
  }
}

/** Not a request HTTP allows: unparseable, no Host on HTTP/1.1, two Host headers. */
export class BadRequestError extends LocalError {
  static override readonly code: AgentErrorCode = 'BadRequest'
}

export class RequestTimeoutError extends LocalError {
  static override readonly code: AgentErrorCode = 'RequestTimeout'
  constructor() {
    super('Request not received in time: the connection is closed')
  }
}

export class PayloadTooLargeError extends LocalError {
  static override readonly code: AgentErrorCode = 'PayloadTooLarge'
}

/** An `Expect` header other than 100-continue (Node would answer a bare 417). */
export class ExpectationFailedError extends LocalError {
  static override readonly code: AgentErrorCode = 'ExpectationFailed'
  constructor() {
    super('Unsupported Expect header: only 100-continue is understood')
  }
}

export class HeaderFieldsTooLargeError extends LocalError {
  static override readonly code: AgentErrorCode = 'RequestHeaderFieldsTooLarge'
  constructor(limitBytes: number) {
    super(`Request header fields too large: the limit is ${limitBytes} bytes`)
  }
}

/**
 * An upstream (EKS Auth, STS) answered with an error. `statusCode` is the upstream's status,
 * passed through to the pod as the reference agent does; `code` is the sanitised upstream code.
 */
export class UpstreamError extends AgentError {
  readonly requestId: string | undefined
  readonly fault: 'client' | 'server'
  readonly upstreamMessage: string
  /** The upstream judged this token: the same token can never succeed (evict, do not retry). */
  readonly irrecoverable: boolean

  constructor(opts: {
    statusCode: number
    code: string
    message: string
    requestId?: string | undefined
    irrecoverable: boolean
  }) {
    const fault = opts.statusCode >= 500 ? 'server' : 'client'
    // The reference agent's layout: "[requestId]: (Code): message, fault: client"
    const prefix = opts.requestId !== undefined ? `[${opts.requestId}]: ` : ''
    super(opts.code, opts.statusCode, `${prefix}(${opts.code}): ${opts.message}, fault: ${fault}`)
    this.requestId = opts.requestId
    this.fault = fault
    this.upstreamMessage = opts.message
    this.irrecoverable = opts.irrecoverable
  }
}

/** The upstream could not be reached (DNS, refused, reset, TLS). */
export class UpstreamUnreachableError extends LocalError {
  static override readonly code: AgentErrorCode = 'UpstreamUnreachable'
}

/** The upstream did not answer in time. */
export class UpstreamTimeoutError extends LocalError {
  static override readonly code: AgentErrorCode = 'UpstreamTimeout'
}

/**
 * The call for these credentials waits in a paced queue (EKS Auth is throttling this node) and
 * will not start soon enough for this request. The call stays queued; the retry finds its result.
 */
export class UpstreamQueuedError extends LocalError {
  static override readonly code: AgentErrorCode = 'UpstreamThrottled'
  constructor(etaMs: number) {
    const seconds = retryAfterSeconds(etaMs)
    super(
      `EKS Auth is throttling this node's calls; the call for these credentials is queued and ` +
        `should run within about ${seconds} s: retry after ${seconds} s`,
      { retryAfterSeconds: seconds },
    )
  }
}

/**
 * A queued call was dropped unmade because everybody who asked for it had given up (no pod waits
 * for this answer; a request that asks again starts a new call).
 */
export class CallDroppedError extends LocalError {
  static override readonly code: AgentErrorCode = 'UpstreamThrottled'
  constructor() {
    super('the queued EKS Auth call for these credentials was dropped: nobody waited for it', {
      retryAfterSeconds: 1,
    })
  }
}

/** More upstream calls are queued than the agent keeps. */
export class QueueFullError extends LocalError {
  static override readonly code: AgentErrorCode = 'UpstreamThrottled'
  constructor() {
    super('too many EKS Auth calls are queued on this node: retry after 5 s', {
      retryAfterSeconds: 5,
    })
  }
}

/**
 * A per-source or agent-wide limit refused the request before any upstream call: the source's rate of
 * requests that need new credentials, its queued calls, or the agent's request rate.
 */
export class TooManyRequestsError extends LocalError {
  static override readonly code: AgentErrorCode = 'TooManyRequests'
  constructor(what: string, waitMs: number) {
    const seconds = retryAfterSeconds(waitMs)
    super(`${what}: retry after ${seconds} s`, { retryAfterSeconds: seconds })
  }
}

/** The upstream answered 2xx with something that is not usable credentials. */
export class InvalidUpstreamResponseError extends LocalError {
  static override readonly code: AgentErrorCode = 'InvalidUpstreamResponse'
}

/** The node's own AWS credentials (used to sign upstream calls) could not be loaded. */
export class NodeCredentialsError extends LocalError {
  static override readonly code: AgentErrorCode = 'NodeCredentialsUnavailable'
}

/** Anything unexpected: a generic 500 that reveals nothing (the cause stays in the log). */
export class InternalError extends LocalError {
  static override readonly code: AgentErrorCode = 'InternalError'
  constructor(cause: unknown) {
    super('Internal error while getting credentials', { cause })
  }
}

/** True when an upstream answer means "this token will never work": evict, do not retry. */
export function isIrrecoverable(err: unknown): boolean {
  return err instanceof UpstreamError && err.irrecoverable
}

/** Anything that is not an AgentError becomes an InternalError. */
export function toAgentError(err: unknown): AgentError {
  return err instanceof AgentError ? err : new InternalError(err)
}
