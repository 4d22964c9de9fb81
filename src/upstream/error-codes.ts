// The error codes upstreams answer with, in one place: EKS Auth's modelled errors (protocol.md
// 1.5) and STS's AssumeRoleWithWebIdentity errors (protocol.md 4), each with the status the agent
// answers and whether it judges the token for good, AWS's authentication errors, and the bound
// on which codes may become metric label values.

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

/**
 * STS's AssumeRoleWithWebIdentity errors by their wire code (the awsQuery `Code`): the status STS
 * sends (`wire`) and the one the agent answers (`status`). STS sends Throttling with HTTP 400; the
 * agent answers it as throttling (429, paced like EKS Auth's). `irrecoverable`: the token, or the
 * role's trust in it, refuses for good.
 */
export const STS_ERRORS = {
  InvalidIdentityToken: { wire: 400, status: 400, irrecoverable: true },
  ExpiredTokenException: { wire: 400, status: 400, irrecoverable: true },
  IDPRejectedClaim: { wire: 403, status: 403, irrecoverable: true },
  AccessDenied: { wire: 403, status: 403, irrecoverable: true },
  MalformedPolicyDocument: { wire: 400, status: 400, irrecoverable: true },
  PackedPolicyTooLarge: { wire: 400, status: 400, irrecoverable: true },
  IDPCommunicationError: { wire: 400, status: 400, irrecoverable: false },
  RegionDisabledException: { wire: 403, status: 403, irrecoverable: false },
  ValidationError: { wire: 400, status: 400, irrecoverable: false },
  Throttling: { wire: 400, status: 429, irrecoverable: false },
  InternalFailure: { wire: 500, status: 500, irrecoverable: false },
  ServiceUnavailable: { wire: 503, status: 503, irrecoverable: false },
} as const satisfies Record<string, { wire: number; status: number; irrecoverable: boolean }>

export type StsErrorCode = keyof typeof STS_ERRORS

export const STS_ERROR_CODES = Object.keys(STS_ERRORS) as readonly StsErrorCode[]

/**
 * Final refusals that judge only the token presented (expired, or no longer valid: its pod was
 * deleted), not the association: another pod's token of the same association may still succeed.
 */
const TOKEN_ONLY_REFUSALS: ReadonlySet<string> = new Set<EksAuthErrorCode | StsErrorCode>([
  'InvalidTokenException',
  'ExpiredTokenException',
  'InvalidIdentityToken',
])

export function refusesOnlyTheToken(code: string): boolean {
  return TOKEN_ONLY_REFUSALS.has(code)
}

/**
 * An STS error's code as the agent reports it: its wire code when it is a known one (the SDK also
 * names it `<Code>Exception`), any other plain identifier as it is, else `UnknownError`.
 */
export function sanitizeStsCode(raw: string): string {
  const v = raw.trim()
  if (v in STS_ERRORS) return v
  const stripped = v.replace(/Exception$/, '')
  if (stripped in STS_ERRORS) return stripped
  return /^[A-Za-z0-9_.-]{1,100}$/.test(v) ? v : 'UnknownError'
}

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
  ...STS_ERROR_CODES,
  ...AWS_AUTH_ERROR_CODES,
  ...AGENT_ERROR_CODES,
  'UnknownError',
])

/** Keep label cardinality bounded whatever an upstream sends. */
export function boundedCode(code: string | undefined): string {
  if (code === undefined) return 'Unknown'
  return KNOWN_CODES.has(code) ? code : 'Other'
}
