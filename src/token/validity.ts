// When a token may be used: the one rule the handler, the cache and the upstream queue all follow.
// `exp` is strict, as in the reference; `nbf` allows for a node clock a little behind the API
// server's (the reference's newer local validation allows one minute).

import { InvalidTokenClaimsError } from '../errors.js'
import type { TokenClaims } from './parse-token.js'
import { parseToken } from './parse-token.js'

/** Clock-skew allowance for `nbf`. */
export const NBF_SKEW_MS = 60_000

/** A token as a pod sent it, with the claims read from it when it passed the checks. */
export interface CheckedToken {
  readonly token: string
  readonly claims: TokenClaims
}

function isExpired(claims: Pick<TokenClaims, 'expMs'>, nowMs: number): boolean {
  return nowMs >= claims.expMs
}

function isNotYetValid(claims: Pick<TokenClaims, 'nbfMs'>, nowMs: number): boolean {
  return nowMs < claims.nbfMs - NBF_SKEW_MS
}

/** Whether the token's times allow it at nowMs: before `exp`, and not before `nbf` - skew. */
export function isTokenUsable(
  claims: Pick<TokenClaims, 'expMs' | 'nbfMs'>,
  nowMs: number,
): boolean {
  return !isExpired(claims, nowMs) && !isNotYetValid(claims, nowMs)
}

/** The reference's claim validation: throws InvalidTokenClaimsError naming what is wrong. */
export function checkTokenTimes(claims: Pick<TokenClaims, 'expMs' | 'nbfMs'>, nowMs: number): void {
  const problems: string[] = []
  if (isExpired(claims, nowMs)) problems.push('token is expired')
  if (isNotYetValid(claims, nowMs)) problems.push('token is not valid yet')
  if (problems.length > 0) throw new InvalidTokenClaimsError(problems)
}

/**
 * For a token that passed checkTokenTimes earlier (a call waiting in a queue): time only moves
 * towards its expiry, so that is all there is to check again.
 */
export function checkNotExpired(claims: Pick<TokenClaims, 'expMs'>, nowMs: number): void {
  checkTokenTimes({ expMs: claims.expMs, nbfMs: -Infinity }, nowMs)
}

/** Parse and check a token as it arrives: throws MalformedTokenError or InvalidTokenClaimsError. */
export function checkToken(token: string, nowMs: number): CheckedToken {
  const claims = parseToken(token)
  checkTokenTimes(claims, nowMs)
  return { token, claims }
}
