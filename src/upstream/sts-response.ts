// Pure parsing of STS's AssumeRoleWithWebIdentity outcomes (protocol.md 4), as @aws-sdk/client-sts
// hands them over: an answer into credentials, an error into the AgentError a pod is answered
// with (error-codes.ts has each code's status). Messages never carry the pod's token.

import type { AgentError } from '../errors.js'
import {
  InvalidUpstreamResponseError,
  UpstreamError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
} from '../errors.js'
import { secretRedactor } from '../util/redact.js'
import { STS_ERRORS, sanitizeStsCode } from './error-codes.js'
import { accountIdFromArn, cleanMessage } from './eks-auth-response.js'
import type { SourceAnswer } from './types.js'

/** The hint an STS refusal of the role gets: what to look at first. */
const HINTS: Readonly<Record<string, string>> = {
  AccessDenied:
    "likely cause: the role's trust policy does not allow sts:AssumeRoleWithWebIdentity for this cluster's OIDC provider and this service account",
  IDPRejectedClaim:
    "likely cause: the IAM OIDC provider's audience is not pods.eks.amazonaws.com, or the token's issuer is not registered as one",
}

/** STS's answer as credentials; InvalidUpstreamResponseError naming the first missing part. */
export function parseStsAnswer(out: {
  Credentials?: {
    AccessKeyId?: string
    SecretAccessKey?: string
    SessionToken?: string
    Expiration?: Date
  }
  AssumedRoleUser?: { Arn?: string }
}): Omit<SourceAnswer, 'association'> {
  const c = out.Credentials
  const invalid = (what: string) =>
    new InvalidUpstreamResponseError(`invalid response from STS: ${what}`)
  if (c === undefined) throw invalid('Credentials is missing')
  for (const k of ['AccessKeyId', 'SecretAccessKey', 'SessionToken'] as const) {
    if (typeof c[k] !== 'string' || c[k] === '') throw invalid(`Credentials.${k} is missing`)
  }
  const expirationMs = c.Expiration?.getTime()
  if (expirationMs === undefined || !Number.isFinite(expirationMs)) {
    throw invalid('Credentials.Expiration is missing or not a date')
  }
  const arn = out.AssumedRoleUser?.Arn
  const accountId = arn === undefined ? undefined : accountIdFromArn(arn)
  if (arn === undefined || accountId === undefined) {
    throw invalid('AssumedRoleUser.Arn is missing or has no account id')
  }
  return {
    credentials: {
      accessKeyId: c.AccessKeyId as string,
      secretAccessKey: c.SecretAccessKey as string,
      sessionToken: c.SessionToken as string,
      accountId,
      expirationMs,
      assumedRoleArn: arn,
    },
    issuedBy: 'sts',
  }
}

/** The error for a failed STS attempt: STS's own answer, or the transport failure. */
export function stsError(err: unknown, timedOut: boolean, token: string): AgentError {
  const e = err as {
    name?: string
    Code?: unknown
    message?: unknown
    code?: unknown
    $metadata?: { httpStatusCode?: number; requestId?: string }
  }
  const status = e.$metadata?.httpStatusCode
  if (status !== undefined && status >= 300) {
    const code = sanitizeStsCode(typeof e.Code === 'string' ? e.Code : (e.name ?? ''))
    const known = (STS_ERRORS as Record<string, { status: number; irrecoverable: boolean }>)[code]
    const redact = secretRedactor([token])
    let message = cleanMessage(redact(typeof e.message === 'string' ? e.message : ''))
    if (message === '') message = `no error message (HTTP ${status})`
    const hint = HINTS[code]
    return new UpstreamError({
      statusCode: status >= 500 ? status : (known?.status ?? status),
      code,
      message: hint === undefined ? message : `${message}; ${hint}`,
      requestId: e.$metadata?.requestId,
      irrecoverable: known?.irrecoverable === true && status < 500,
    })
  }
  if (
    timedOut ||
    e.name === 'AbortError' ||
    e.code === 'UND_ERR_HEADERS_TIMEOUT' ||
    e.code === 'UND_ERR_BODY_TIMEOUT'
  ) {
    return new UpstreamTimeoutError('STS did not answer in time', { cause: err })
  }
  const why =
    typeof e.code === 'string'
      ? e.code
      : typeof e.message === 'string'
        ? e.message.slice(0, 200)
        : 'unknown error'
  return new UpstreamUnreachableError(`unable to reach STS: ${why}`, { cause: err })
}
