// Every failure the agent can answer with is an AgentError: a stable `code` (the JSON body's
// `Code`), an HTTP `statusCode`, and a message that is safe to show a pod (never a token or secret).

/** Codes the agent itself produces. Upstream errors carry the upstream's own code instead. */
export const AGENT_ERROR_CODES = [
  'MissingToken',
  'MalformedToken',
  'InvalidTokenClaims',
  'AccessDenied',
  'NotFound',
  'MethodNotAllowed',
  'BadRequest',
  'RequestTimeout',
  'PayloadTooLarge',
  'RequestHeaderFieldsTooLarge',
  'UpstreamUnreachable',
  'UpstreamTimeout',
  'UpstreamThrottled',
  'InvalidUpstreamResponse',
  'NodeCredentialsUnavailable',
  'InternalError',
] as const

export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number]

export class AgentError extends Error {
  /** Value of the `Code` field of the JSON error body. */
  readonly code: string
  /** HTTP status the agent answers with. */
  readonly statusCode: number
  /** Seconds for the `Retry-After` header of a 429 or 503 (default 1). */
  readonly retryAfterSeconds: number | undefined

  constructor(
    code: string,
    statusCode: number,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number },
  ) {
    super(message, options)
    this.name = 'AgentError'
    this.code = code
    this.statusCode = statusCode
    this.retryAfterSeconds = options?.retryAfterSeconds
  }
}

/** A request the agent refuses before any upstream call (bad token, bad host, bad path...). */
export class RequestError extends AgentError {
  constructor(code: AgentErrorCode, statusCode: number, message: string) {
    super(code, statusCode, message)
    this.name = 'RequestError'
  }
}

export type Fault = 'client' | 'server' | 'unknown'

/**
 * EKS Auth (or STS) answered with an error. `statusCode` is the upstream's HTTP status, passed
 * through to the pod as the reference agent does; `code` is the sanitised upstream error code.
 */
export class UpstreamError extends AgentError {
  readonly requestId: string | undefined
  readonly fault: Fault
  readonly upstreamMessage: string

  constructor(opts: {
    statusCode: number
    code: string
    message: string
    requestId?: string | undefined
    fault: Fault
  }) {
    // Same text layout as the reference agent: "[requestId]: (Code): message, fault: client"
    const prefix = opts.requestId !== undefined ? `[${opts.requestId}]: ` : ''
    super(
      opts.code,
      opts.statusCode,
      `${prefix}(${opts.code}): ${opts.message}, fault: ${opts.fault}`,
    )
    this.name = 'UpstreamError'
    this.requestId = opts.requestId
    this.fault = opts.fault
    this.upstreamMessage = opts.message
  }
}

/** The upstream could not be reached (DNS, refused, reset, TLS): 502. */
export class UpstreamUnreachableError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UpstreamUnreachable', 502, message, options)
    this.name = 'UpstreamUnreachableError'
  }
}

/** The upstream did not answer in time: 504. */
export class UpstreamTimeoutError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('UpstreamTimeout', 504, message, options)
    this.name = 'UpstreamTimeoutError'
  }
}

/**
 * The call for these credentials waits in the upstream gate's paced queue (EKS Auth is throttling
 * this node) and will not start soon enough for this request: 503 with `Retry-After`. The call
 * stays queued; the client's retry finds its result.
 */
export class UpstreamQueuedError extends AgentError {
  constructor(etaMs: number) {
    const seconds = Math.min(60, Math.max(1, Math.ceil(etaMs / 1000)))
    super(
      'UpstreamThrottled',
      503,
      `EKS Auth is throttling this node's calls; the call for these credentials is queued and ` +
        `should run within about ${seconds} s: retry after ${seconds} s`,
      { retryAfterSeconds: seconds },
    )
    this.name = 'UpstreamQueuedError'
  }
}

/** The upstream answered 2xx with something that is not usable credentials: 502. */
export class InvalidUpstreamResponseError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('InvalidUpstreamResponse', 502, message, options)
    this.name = 'InvalidUpstreamResponseError'
  }
}

/** The node's own AWS credentials (used to sign upstream calls) could not be loaded: 500. */
export class NodeCredentialsError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NodeCredentialsUnavailable', 500, message, options)
    this.name = 'NodeCredentialsError'
  }
}

/**
 * Upstream error codes after which retrying the same token can never succeed: the cache evicts
 * the entry at once (the reference agent's list, plus the other modelled 400 errors).
 */
const IRRECOVERABLE_CODES: ReadonlySet<string> = new Set([
  'AccessDeniedException',
  'ExpiredTokenException',
  'InvalidTokenException',
  'ResourceNotFoundException',
  'InvalidParameterException',
  'InvalidRequestException',
])

/** True when an upstream answer means "this token will never work": evict, do not retry. */
export function isIrrecoverable(err: unknown): boolean {
  return err instanceof UpstreamError && IRRECOVERABLE_CODES.has(err.code)
}

/** Anything that is not an AgentError becomes a generic 500 that reveals nothing. */
export function toAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err
  return new AgentError('InternalError', 500, 'Internal error while getting credentials', {
    cause: err,
  })
}
