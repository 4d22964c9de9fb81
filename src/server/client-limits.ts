// The limits of DESIGN section 4a, which protect what is scarce (the upstream's account-wide quota,
// the event loop's fairness) and never a cache hit: how many connections one source address may
// hold open, how many requests per second from it may start an upstream call, and optionally how
// many requests per second the agent takes in all. Each refusal is counted by reason.

import type { Socket } from 'node:net'
import { LRUCache } from 'lru-cache'
import { TooManyRequestsError } from '../errors.js'
import type { AgentMetrics, LimitReason } from '../metrics/metrics.js'
import type { Clock } from '../util/clock.js'
import { TokenBucket } from '../util/token-bucket.js'

export interface ClientLimitsOptions {
  clock: Clock
  metrics: Pick<AgentMetrics, 'requestsLimited'>
  /** Requests per second and source that may start an upstream call (burst 2x); 0 = no limit. */
  missRate: number
  /** Open connections per source address; 0 = no limit. */
  maxConnections: number
  /** Requests per second on all credential listeners (burst half of it); 0 = no limit. */
  requestRate: number
}

/** Sources whose miss-rate bucket is remembered at most; forgetting one only forgives it. */
const MAX_TRACKED_SOURCES = 16_384

export class ClientLimits {
  readonly #clock: Clock
  readonly #metrics: Pick<AgentMetrics, 'requestsLimited'>
  readonly #missRate: number
  readonly #maxConnections: number
  readonly #requestBucket: TokenBucket | undefined
  /** Open connections per source address (a source with none has no entry). */
  readonly #connections = new Map<string, number>()
  readonly #missBuckets = new LRUCache<string, TokenBucket>({ max: MAX_TRACKED_SOURCES })

  constructor(o: ClientLimitsOptions) {
    this.#clock = o.clock
    this.#metrics = o.metrics
    this.#missRate = o.missRate
    this.#maxConnections = o.maxConnections
    if (o.requestRate > 0) {
      this.#requestBucket = new TokenBucket({
        clock: o.clock,
        ratePerSecond: o.requestRate,
        burst: Math.max(1, o.requestRate / 2),
      })
    }
  }

  /** Whether the agent-wide request rate is limited at all (the hot path skips the check if not). */
  get limitsRequests(): boolean {
    return this.#requestBucket !== undefined
  }

  /** Open connections from `address` right now. */
  connectionsFrom(address: string): number {
    return this.#connections.get(address) ?? 0
  }

  /**
   * A new connection: true when its source is under its cap (the connection is then counted until
   * it closes); false when the caller must close it. A source under the cap is never refused
   * because of another source's connections.
   */
  admitConnection(socket: Socket): boolean {
    const address = socket.remoteAddress
    if (this.#maxConnections === 0 || address === undefined) return true
    const open = this.#connections.get(address) ?? 0
    if (open >= this.#maxConnections) {
      this.#refused('connections')
      return false
    }
    this.#connections.set(address, open + 1)
    socket.once('close', () => {
      const left = (this.#connections.get(address) ?? 1) - 1
      if (left <= 0) this.#connections.delete(address)
      else this.#connections.set(address, left)
    })
    return true
  }

  /**
   * A request from `address` that would start an upstream call: undefined when its source may
   * start one now, else the 429 to answer (Retry-After: when the next call is allowed).
   */
  takeMiss(address: string | undefined): TooManyRequestsError | undefined {
    if (this.#missRate === 0 || address === undefined) return undefined
    let bucket = this.#missBuckets.get(address)
    if (bucket === undefined) {
      bucket = new TokenBucket({
        clock: this.#clock,
        ratePerSecond: this.#missRate,
        burst: Math.max(1, 2 * this.#missRate),
      })
      this.#missBuckets.set(address, bucket)
    }
    if (bucket.tryTake()) return undefined
    this.#refused('miss_rate')
    return new TooManyRequestsError(
      `Too many requests for new credentials from this pod (at most ${this.#missRate} per second per source address)`,
      bucket.msUntilToken(),
    )
  }

  /** Any request, when --max-request-rate is set: undefined, or the 429 to answer. */
  takeRequest(): TooManyRequestsError | undefined {
    const bucket = this.#requestBucket
    if (bucket === undefined || bucket.tryTake()) return undefined
    this.#refused('request_rate')
    return new TooManyRequestsError(
      'Too many requests to this agent (--max-request-rate)',
      bucket.msUntilToken(),
    )
  }

  #refused(reason: LimitReason): void {
    this.#metrics.requestsLimited.inc({ reason })
  }
}
