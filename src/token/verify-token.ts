// Verifies a pod's token on the node (--token-jwks): its signature against the issuer's pinned
// keys, its issuer and audience, and that it is bound to a pod. Only a verified token may read an
// entry it did not create (per pod across rotation, or per association). A bad token is refused
// here, costing no upstream call; a token that cannot be judged because the keys cannot be
// loaded is left unverified, and the agent serves it per token as without verification.

import { errors as joseErrors, jwtVerify } from 'jose'
import type { AgentError } from '../errors.js'
import {
  InvalidTokenAudienceError,
  InvalidTokenClaimsError,
  InvalidTokenIssuerError,
  InvalidTokenSignatureError,
  TokenNotBoundToPodError,
} from '../errors.js'
import type { Clock } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import type { IssuerKeys } from './issuer-keys.js'
import { KeysUnavailableError } from './issuer-keys.js'
import { kubernetesSubject } from './parse-token.js'
import type { CheckedToken } from './validity.js'
import { NBF_SKEW_MS } from './validity.js'

/** The pod a verified token names: every part present, and signed by the issuer. */
export interface VerifiedPod {
  readonly namespace: string
  readonly serviceAccount: string
  readonly podName: string | undefined
  readonly podUid: string
}

/** pod_identity_local_validation_total{result}: what verifying a token came to. */
export const VALIDATION_RESULTS = [
  'accepted',
  'bad_signature',
  'unknown_key',
  'wrong_issuer',
  'wrong_audience',
  'not_pod_bound',
  'invalid_claims',
  'keys_unavailable',
] as const
export type ValidationResult = (typeof VALIDATION_RESULTS)[number]

/** Signature algorithms a service-account issuer uses; never HMAC (a shared secret) or none. */
const ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
]

export interface TokenVerifierOptions {
  keys: IssuerKeys
  issuer: string
  audience: string
  clock: Clock
  logger: Logger
  onResult: (result: ValidationResult) => void
}

export class TokenVerifier {
  readonly #o: TokenVerifierOptions
  /** Whether the last verification could load the keys (a change is logged once). */
  #keysAvailable = true

  constructor(o: TokenVerifierOptions) {
    this.#o = o
  }

  /**
   * The pod a token is verified to belong to, or undefined when the keys cannot be loaded.
   * Throws the AgentError (400) that refuses a bad token.
   */
  async verify(request: CheckedToken): Promise<VerifiedPod | undefined> {
    const o = this.#o
    let payload
    try {
      payload = (
        await jwtVerify(request.token, o.keys.resolve, {
          issuer: o.issuer,
          audience: o.audience,
          algorithms: ALGORITHMS,
          currentDate: new Date(o.clock.now()),
          clockTolerance: NBF_SKEW_MS / 1000,
        })
      ).payload
    } catch (err) {
      if (err instanceof KeysUnavailableError) {
        this.#keysChanged(false, err.message)
        o.onResult('keys_unavailable')
        return undefined
      }
      const [result, refusal] = this.#refusal(err)
      o.onResult(result)
      throw refusal
    }
    this.#keysChanged(true)
    const subject = kubernetesSubject(payload)
    const { namespace, serviceAccount, podUid } = subject
    if (namespace === undefined || serviceAccount === undefined || podUid === undefined) {
      o.onResult('not_pod_bound')
      throw new TokenNotBoundToPodError(
        podUid === undefined ? 'no kubernetes.io pod claim' : 'no namespace or service account',
      )
    }
    o.onResult('accepted')
    return { namespace, serviceAccount, podName: subject.podName, podUid }
  }

  /** Why jose refused a token, as a metric result and the answer to the pod. */
  #refusal(err: unknown): [ValidationResult, AgentError] {
    const o = this.#o
    if (err instanceof joseErrors.JWTClaimValidationFailed) {
      if (err.claim === 'iss') return ['wrong_issuer', new InvalidTokenIssuerError(o.issuer)]
      if (err.claim === 'aud') return ['wrong_audience', new InvalidTokenAudienceError(o.audience)]
      const problem = err instanceof joseErrors.JWTExpired ? 'token is expired' : err.message
      return ['invalid_claims', new InvalidTokenClaimsError([problem])]
    }
    if (err instanceof joseErrors.JWKSNoMatchingKey) {
      return [
        'unknown_key',
        new InvalidTokenSignatureError(
          "it is signed by a key the issuer's key set (--token-jwks) does not have",
        ),
      ]
    }
    if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
      return [
        'bad_signature',
        new InvalidTokenSignatureError(
          `the algorithm is not one an issuer signs with (${ALGORITHMS.join(', ')})`,
        ),
      ]
    }
    return [
      'bad_signature',
      new InvalidTokenSignatureError("the signature does not match the issuer's keys"),
    ]
  }

  #keysChanged(available: boolean, reason?: string): void {
    if (available === this.#keysAvailable) return
    this.#keysAvailable = available
    if (available) {
      this.#o.logger.info(
        { event: 'token_verification_available' },
        'token verification: the issuer keys are loaded; verified tokens are keyed per pod or association again',
      )
    } else {
      this.#o.logger.warn(
        { event: 'token_verification_unavailable', error: reason },
        'token verification: cannot load the issuer keys; serving tokens unverified, per token, until they load',
      )
    }
  }
}
