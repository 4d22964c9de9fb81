// A token bucket on the injected clock: `rate` tokens per second, holding at most `burst`.

import type { Clock } from './clock.js'

export class TokenBucket {
  readonly #clock: Pick<Clock, 'now'>
  readonly #ratePerMs: number
  readonly #burst: number
  #tokens: number
  #lastMs: number

  constructor(opts: { clock: Pick<Clock, 'now'>; ratePerSecond: number; burst: number }) {
    if (!(opts.ratePerSecond > 0) || !(opts.burst >= 1)) {
      throw new TypeError('TokenBucket needs ratePerSecond > 0 and burst >= 1')
    }
    this.#clock = opts.clock
    this.#ratePerMs = opts.ratePerSecond / 1000
    this.#burst = opts.burst
    this.#tokens = opts.burst
    this.#lastMs = opts.clock.now()
  }

  #refill(): void {
    const now = this.#clock.now()
    if (now > this.#lastMs) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#lastMs) * this.#ratePerMs)
    }
    this.#lastMs = now
  }

  /** Take one token if available. */
  tryTake(): boolean {
    this.#refill()
    if (this.#tokens >= 1) {
      this.#tokens -= 1
      return true
    }
    return false
  }

  /** Milliseconds until a token is available (0 when one is). */
  msUntilToken(): number {
    this.#refill()
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) / this.#ratePerMs)
  }
}
