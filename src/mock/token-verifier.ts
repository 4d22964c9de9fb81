// How the mocks judge a pod's token, as EKS Auth and STS do: its signature against a JWKS, its
// audience (pods.eks.amazonaws.com), an optional issuer, and its times on the mock's clock.

import { createLocalJWKSet, errors as joseErrors, jwtVerify } from 'jose'
import type { JSONWebKeySet, JWTPayload } from 'jose'
import { POD_IDENTITY_AUDIENCE } from './token-issuer.js'

/** Why a token was refused: it has expired, or it is not valid (with jose's reason). */
export class TokenRefused extends Error {
  readonly kind: 'expired' | 'invalid'
  constructor(kind: 'expired' | 'invalid', reason: string) {
    super(reason)
    this.kind = kind
  }
}

/** Verified tokens remembered at most. */
const VERIFIED_CACHE_SIZE = 10_000

export class TokenVerifier {
  readonly #jwks: ReturnType<typeof createLocalJWKSet>
  readonly #issuer: string | undefined
  readonly #now: () => number
  /** Tokens whose signature, audience and issuer passed (oldest first). */
  readonly #verified = new Map<string, JWTPayload>()

  constructor(o: { jwks: JSONWebKeySet; issuer?: string | undefined; now: () => number }) {
    this.#jwks = createLocalJWKSet(o.jwks)
    this.#issuer = o.issuer
    this.#now = o.now
  }

  /**
   * The token's claims, or TokenRefused. Signature, audience and issuer are verified once per
   * token (RSA verification costs about 0.25 ms, and benchmarks present the same tokens again and
   * again); the time claims are checked on every call against the clock, as jose does.
   */
  async verify(token: string): Promise<JWTPayload> {
    const nowMs = this.#now()
    const cached = this.#verified.get(token)
    if (cached !== undefined) {
      const nowS = Math.floor(nowMs / 1000)
      if (typeof cached.exp === 'number' && cached.exp <= nowS) {
        throw new TokenRefused('expired', '"exp" claim timestamp check failed')
      }
      if (typeof cached.nbf === 'number' && cached.nbf > nowS) {
        throw new TokenRefused('invalid', '"nbf" claim timestamp check failed')
      }
      return cached
    }
    let payload: JWTPayload
    try {
      payload = (
        await jwtVerify(token, this.#jwks, {
          audience: POD_IDENTITY_AUDIENCE,
          currentDate: new Date(nowMs),
          ...(this.#issuer !== undefined ? { issuer: this.#issuer } : {}),
        })
      ).payload
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw new TokenRefused('expired', err.message)
      throw new TokenRefused(
        'invalid',
        err instanceof joseErrors.JOSEError ? err.message : 'verification failed',
      )
    }
    if (this.#verified.size >= VERIFIED_CACHE_SIZE) {
      this.#verified.delete(this.#verified.keys().next().value as string)
    }
    this.#verified.set(token, payload)
    return payload
  }
}
