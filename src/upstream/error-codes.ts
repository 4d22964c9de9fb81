// The error codes upstreams answer with, in one place: EKS Auth's modelled errors (protocol.md
// 1.5) with whether each one judges the token for good, AWS's authentication errors, and the
// bound on which codes may become metric label values.

import { AGENT_ERROR_CODES } from '../errors.js'

/**
 * EKS Auth's modelled errors. `irrecoverable`: the same token can never succeed (the cache evicts
 * at once and never retries): the reference agent's list plus the other modelled 400s.
 */
export const EKS_AUTH_ERRORS = {
  AccessDeniedException: { status: 400, irrecoverable: true },
  ExpiredTokenException: { status: 400, irrecoverable: true },
  InvalidParameterException: { status: 400, irrecoverable: true },
  InvalidRequestException: { status: 400, irrecoverable: true },
  InvalidTokenException: { status: 400, irrecoverable: true },
  ResourceNotFoundException: { status: 404, irrecoverable: true },
  ThrottlingException: { status: 429, irrecoverable: false },
  InternalServerException: { status: 500, irrecoverable: false },
  ServiceUnavailableException: { status: 503, irrecoverable: false },
} as const satisfies Record<string, { status: number; irrecoverable: boolean }>

export type EksAuthErrorCode = keyof typeof EKS_AUTH_ERRORS

export const EKS_AUTH_ERROR_CODES = Object.keys(EKS_AUTH_ERRORS) as readonly EksAuthErrorCode[]

/** AWS's answers to a request it could not authenticate (HTTP 403, any service). */
export const AWS_AUTH_ERROR_CODES = [
  'MissingAuthenticationTokenException',
  'IncompleteSignatureException',
  'InvalidSignatureException',
  'UnrecognizedClientException',
] as const

export type AwsAuthErrorCode = (typeof AWS_AUTH_ERROR_CODES)[number]

/**
 * Whether an EKS Auth error answer judges the token for good: one of the codes that say so, sent
 * with a 4xx status. A 5xx is a server fault whatever code it carries (a proxy or a broken
 * upstream may send one), so it is retried and never remembered.
 */
export function isIrrecoverableEksAuthCode(code: string, statusCode: number): boolean {
  return (
    statusCode >= 400 &&
    statusCode < 500 &&
    (EKS_AUTH_ERRORS as Record<string, { irrecoverable: boolean } | undefined>)[code]
      ?.irrecoverable === true
  )
}

/** Codes that may be metric label values; whatever else an upstream sends is "Other". */
const KNOWN_CODES: ReadonlySet<string> = new Set<string>([
  ...EKS_AUTH_ERROR_CODES,
  ...AWS_AUTH_ERROR_CODES,
  ...AGENT_ERROR_CODES,
  'UnknownError',
])

/** Keep label cardinality bounded whatever an upstream sends. */
export function boundedCode(code: string | undefined): string {
  if (code === undefined) return 'Unknown'
  return KNOWN_CODES.has(code) ? code : 'Other'
}
