// An upstream's final refusals of tokens (invalid, expired, access denied, no association),
// remembered by exact token for --negative-cache-ttl and answered again without a call: a pod
// retrying a bad token costs one call, not one per retry.

import { LRUCache } from 'lru-cache'
import type { AgentError } from '../errors.js'

/** Refusals remembered at most (each holds a token: about 1 KB). */
const MAX_REFUSALS = 4096

interface Refusal {
  readonly error: AgentError
  readonly untilMs: number
}

export class Refusals {
  readonly #ttlMs: number
  /** Undefined when refusals are not remembered (a TTL of 0). */
  readonly #byToken: LRUCache<string, Refusal> | undefined

  constructor(ttlMs: number) {
    this.#ttlMs = ttlMs
    if (ttlMs > 0) this.#byToken = new LRUCache({ max: MAX_REFUSALS })
  }

  remember(token: string, error: AgentError, nowMs: number): void {
    this.#byToken?.set(token, { error, untilMs: nowMs + this.#ttlMs })
  }

  /** The refusal of exactly this token, while it is remembered. */
  get(token: string, nowMs: number): AgentError | undefined {
    const r = this.#byToken?.get(token)
    if (r === undefined) return undefined
    if (nowMs < r.untilMs) return r.error
    this.#byToken?.delete(token)
    return undefined
  }
}
