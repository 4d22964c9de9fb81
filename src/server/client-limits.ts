// The agent's limits, which protect what is scarce (the upstream's account-wide quota,
// the event loop's fairness) and never a cache hit: how many connections one source address may
// have served at once, how many requests per second from it may start an upstream call, and
// optionally how many requests per second the agent takes in all. Each refusal is counted by
// reason.
//
// A connection beyond its source's cap is held unread, not closed: it is served once one of the
// source's served connections closes. Closing it at once would let a flooding client reconnect at
// once, over and over: Node accepts one connection per turn of its event loop (libuv since 1.45),
// so the kernel's accept queue would stay full of the flood's reconnections and every other
// pod's new connection would wait there for seconds (bench/README.md, "Neighbours").

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
  /** Connections per source address served at once (more are held unread); 0 = no limit. */
  maxConnections: number
  /** Requests per second on all credential listeners (burst half of it); 0 = no limit. */
  requestRate: number
}

/** Sources whose miss-rate bucket is remembered at most; forgetting one only forgives it. */
const MAX_TRACKED_SOURCES = 16_384
/** Connections held unread at most, all sources together; past it the oldest held one is closed. */
export const MAX_HELD_CONNECTIONS = 4096

/** One source address's connections: those served, and those held (oldest first) until one of them closes. */
interface SourceConnections {
  served: number
  readonly held: Set<Socket>
}

export class ClientLimits {
  readonly #clock: Clock
  readonly #metrics: Pick<AgentMetrics, 'requestsLimited'>
  readonly #missRate: number
  readonly #maxConnections: number
  readonly #requestBucket: TokenBucket | undefined
  /** Connections per source address (a source with none has no entry). */
  readonly #sources = new Map<string, SourceConnections>()
  /** Every held connection, oldest first, with its source address. */
  readonly #held = new Map<Socket, string>()
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

  /** Connections from `address` being served right now. */
  connectionsFrom(address: string): number {
    return this.#sources.get(address)?.served ?? 0
  }

  /** Connections held unread right now, all sources together. */
  get held(): number {
    return this.#held.size
  }

  /**
   * A new connection. Under its source's cap it is served (and counted until it closes); at the
   * cap it is held unread (counted as limited) until one of the source's served connections
   * closes. A source under its cap is never held because of another source's connections.
   */
  admitConnection(socket: Socket): void {
    const address = socket.remoteAddress
    if (this.#maxConnections === 0 || address === undefined) return
    let source = this.#sources.get(address)
    if (source === undefined) {
      source = { served: 0, held: new Set() }
      this.#sources.set(address, source)
    }
    if (source.served < this.#maxConnections) {
      this.#serve(address, source, socket)
      return
    }
    this.#refused('connections')
    // After Node's HTTP server has set the socket up: its set-up resumes reading on the next tick.
    process.nextTick(() => {
      if (this.#held.has(socket)) socket.pause()
    })
    source.held.add(socket)
    this.#held.set(socket, address)
    socket.once('close', () => {
      if (!this.#held.delete(socket)) return
      source.held.delete(socket)
      this.#forgetIfIdle(address, source)
    })
    if (this.#held.size > MAX_HELD_CONNECTIONS) this.#closeOldestHeld()
  }

  /** Serve every held connection now (on shutdown: each gets its answer, then a close). */
  releaseHeld(): void {
    for (const socket of this.#held.keys()) socket.resume()
    this.#held.clear()
    for (const source of this.#sources.values()) source.held.clear()
  }

  #serve(address: string, source: SourceConnections, socket: Socket): void {
    source.served++
    socket.once('close', () => {
      source.served--
      this.#serveNextHeld(address, source)
      this.#forgetIfIdle(address, source)
    })
  }

  #serveNextHeld(address: string, source: SourceConnections): void {
    for (const next of source.held) {
      source.held.delete(next)
      this.#held.delete(next)
      if (next.destroyed) continue
      this.#serve(address, source, next)
      next.resume()
      return
    }
  }

  #forgetIfIdle(address: string, source: SourceConnections): void {
    if (source.served === 0 && source.held.size === 0) this.#sources.delete(address)
  }

  #closeOldestHeld(): void {
    const oldest = this.#held.entries().next().value
    if (oldest === undefined) return
    const [socket, address] = oldest
    this.#held.delete(socket)
    this.#sources.get(address)?.held.delete(socket)
    socket.destroy()
  }

  /**
   * A request from `address` that would start an upstream call, or whose token was refused on the
   * node (verifying it cost as much): undefined when its source may go on now, else the 429 to
   * answer (Retry-After: when the next is allowed).
   */
  takeMiss(address: string | undefined): TooManyRequestsError | undefined {
    const bucket = this.#missBucket(address)
    if (bucket === undefined || bucket.tryTake()) return undefined
    return this.#missRefused(bucket)
  }

  /**
   * Before a token is verified on the node: the 429 when its source has spent its budget (on
   * calls or refused tokens), without spending any. A flood of forged tokens then costs a
   * signature check only within the budget.
   */
  checkMiss(address: string | undefined): TooManyRequestsError | undefined {
    const bucket = this.#missBucket(address)
    if (bucket === undefined || bucket.msUntilToken() === 0) return undefined
    return this.#missRefused(bucket)
  }

  #missBucket(address: string | undefined): TokenBucket | undefined {
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
    return bucket
  }

  #missRefused(bucket: TokenBucket): TooManyRequestsError {
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
