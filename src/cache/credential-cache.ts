// The credential cache: a hit needs the exact token string the source accepted, and costs one Map
// lookup on a number plus one string comparison (no JWT parsing, no hashing); one upstream call
// in flight per token that every concurrent request awaits; entries served while the credentials
// have more than a floor of life left and the token is usable; renewed in the background after a
// hit past their renewal time, under a rate limit, keeping the old credentials while a renewal
// fails with a recoverable error; an upstream's final refusal of a token is remembered for a few
// seconds and answered again without a call. Over 250 lines: lookup, single flight, renewal and
// refusals share the entries and the flights, and each rule reads best beside the others.

import { LRUCache } from 'lru-cache'
import type { AgentError } from '../errors.js'
import {
  CallDroppedError,
  InvalidUpstreamResponseError,
  isIrrecoverable,
  toAgentError,
} from '../errors.js'
import type { AgentMetrics } from '../metrics/metrics.js'
import type { CheckedToken } from '../token/validity.js'
import { isTokenUsable } from '../token/validity.js'
import { CallTicket, holdWhileQueued } from '../upstream/call-ticket.js'
import { boundedCode } from '../upstream/error-codes.js'
import type { AssociationInfo, CredentialSource, SourceAnswer } from '../upstream/types.js'
import type { Clock } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import { tokenDigest } from '../util/logger.js'
import { TokenBucket } from '../util/token-bucket.js'
import { cacheKey } from './cache-key.js'
import { hitHeaders, serializeCredentials } from './credentials-body.js'

export interface CacheEntry {
  /** The token as the pod sent it, and its claims: a hit requires this very string. */
  readonly request: CheckedToken
  /** Pre-serialised 200 body. */
  readonly body: Buffer
  /** Response headers for a hit, as a flat [name, value, ...] list. */
  readonly headers: readonly string[]
  /** Served while now < serveUntilMs (credential expiry - floor) and the token is usable. */
  readonly serveUntilMs: number
  readonly expirationMs: number
  readonly fetchedAtMs: number
  /** Renew in the background after this instant (Infinity: never worth renewing). */
  refreshAtMs: number
  refreshFailures: number
  /** For logs: short digest of the token, and whom the credentials were issued for. */
  readonly digest: string
  readonly association: AssociationInfo
  /** The end of this entry's trace line for a hit, built on the first traced hit. */
  traceTail?: string
}

export interface CredentialCacheOptions {
  source: CredentialSource
  clock: Clock
  metrics: AgentMetrics
  logger: Logger
  /** LRU bound; 0 disables caching (every request calls the upstream; concurrent ones share a call). */
  maxEntries: number
  /** Renew at most this long after fetching (--max-credential-retention-before-renewal); 0 disables caching. */
  maxRetentionMs: number
  /** Never serve credentials with less life left than this. Default 15 000 ms. */
  minTtlMs?: number
  /** Background renewals per second (--max-service-qps). */
  refreshQps: number
  /** Source of jitter, [0, 1). Default Math.random. */
  random?: () => number
  /**
   * How long a request may wait for its upstream call while the call waits in a paced queue,
   * before it is answered 503 with `Retry-After` (the call stays queued). SDKs give up after
   * about 1 s. Default 700 ms.
   */
  queueHoldMs?: number
  /**
   * How long an upstream's final refusal of a token (isIrrecoverable) is answered again for that
   * exact token without a call (--negative-cache-ttl). Default 0: never.
   */
  refusalTtlMs?: number
}

/** An upstream's final refusal of one token, and until when it is answered again. */
interface Refusal {
  readonly error: AgentError
  readonly untilMs: number
}

/** An upstream call for one token: every concurrent request for that token awaits it. */
interface Flight {
  readonly promise: Promise<CacheEntry>
  readonly ticket: CallTicket
  readonly request: CheckedToken
}

const RETRY_BASE_MS = 5_000
const RETRY_CAP_MS = 120_000
/** Refusals remembered at most (each holds a token: about 1 KB). */
const MAX_REFUSALS = 4096

const noop = (): void => {}

export class CredentialCache {
  readonly #lru: LRUCache<number, CacheEntry> | undefined
  readonly #inflight = new Map<string, Flight>()
  /** Remembered refusals by exact token; undefined when refusals are not remembered. */
  readonly #refusals: LRUCache<string, Refusal> | undefined
  readonly #refusalTtlMs: number
  readonly #source: CredentialSource
  readonly #clock: Clock
  readonly #metrics: AgentMetrics
  readonly #log: Logger
  readonly #minTtlMs: number
  readonly #maxRetentionMs: number
  readonly #queueHoldMs: number
  readonly #refreshBucket: TokenBucket
  readonly #random: () => number

  constructor(opts: CredentialCacheOptions) {
    this.#source = opts.source
    this.#clock = opts.clock
    this.#metrics = opts.metrics
    this.#log = opts.logger
    this.#minTtlMs = opts.minTtlMs ?? 15_000
    this.#maxRetentionMs = opts.maxRetentionMs
    this.#queueHoldMs = opts.queueHoldMs ?? 700
    this.#random = opts.random ?? Math.random
    this.#refusalTtlMs = opts.refusalTtlMs ?? 0
    if (this.#refusalTtlMs > 0) this.#refusals = new LRUCache({ max: MAX_REFUSALS })
    this.#refreshBucket = new TokenBucket({
      clock: opts.clock,
      ratePerSecond: opts.refreshQps,
      burst: Math.max(1, opts.refreshQps),
    })
    if (opts.maxEntries > 0 && opts.maxRetentionMs > 0) {
      this.#lru = new LRUCache<number, CacheEntry>({
        max: opts.maxEntries,
        dispose: (_v, _k, reason) => {
          if (reason === 'evict' || reason === 'delete')
            this.#metrics.cacheState.inc({ state: 'evicted' })
        },
      })
    }
  }

  /** Entries currently held. */
  get size(): number {
    return this.#lru?.size ?? 0
  }

  /** Tokens with an upstream call queued or in flight. */
  get inflight(): number {
    return this.#inflight.size
  }

  /**
   * The hot path: a servable entry for this exact token, or undefined. Never waits; kicks off a
   * background renewal when the entry is past its renewal time.
   */
  lookup(token: string, nowMs: number): CacheEntry | undefined {
    const e = this.#lru?.get(cacheKey(token))
    if (
      e === undefined ||
      e.request.token !== token ||
      nowMs >= e.serveUntilMs ||
      !isTokenUsable(e.request.claims, nowMs)
    ) {
      return undefined
    }
    if (nowMs >= e.refreshAtMs) this.#refresh(e, nowMs)
    return e
  }

  /**
   * A request for a token whose call is queued or in flight: await that call, without parsing
   * the token again (it was checked when the call started). Undefined when there is no such
   * call, or when the token is no longer usable (the caller's checks then say why).
   */
  join(token: string, nowMs: number): Promise<CacheEntry> | undefined {
    const flight = this.#inflight.get(token)
    if (flight === undefined || !isTokenUsable(flight.request.claims, nowMs)) return undefined
    this.#metrics.singleFlightWaits.inc()
    return this.#wait(flight)
  }

  /**
   * The upstream's final refusal of this exact token, if it came within the last refusalTtlMs: the
   * answer for a request that would otherwise start a call (a pod retrying a bad token costs one
   * call, not one per retry). Counted as replayed.
   */
  refusal(token: string, nowMs: number): AgentError | undefined {
    const r = this.#refusals?.get(token)
    if (r === undefined) return undefined
    if (nowMs >= r.untilMs) {
      this.#refusals?.delete(token)
      return undefined
    }
    this.#metrics.refusalsReplayed.inc()
    return r.error
  }

  /**
   * The miss path: credentials for a token that was just checked. Joins the call in flight for
   * this token, or starts one. The call belongs to the cache, not to the request: a client that
   * gives up does not cancel it, and its result is cached for the client's retry. `requester`
   * (the pod's source address) places a new call in the upstream queue's fair share.
   */
  resolve(request: CheckedToken, requester?: string): Promise<CacheEntry> {
    let flight = this.#inflight.get(request.token)
    if (flight !== undefined) {
      this.#metrics.singleFlightWaits.inc()
    } else {
      this.#metrics.cacheState.inc({ state: 'miss' })
      flight = this.#fetch(request, 'request', tokenDigest(request.token), requester)
    }
    return this.#wait(flight)
  }

  /** One request's wait: never long while the call waits in a paced queue (call-ticket.ts). */
  #wait(flight: Flight): Promise<CacheEntry> {
    return holdWhileQueued(flight.promise, flight.ticket, {
      clock: this.#clock,
      holdMs: this.#queueHoldMs,
      onRefused: () => this.#metrics.queueRejections.inc(),
    })
  }

  #fetch(
    request: CheckedToken,
    reason: 'request' | 'refresh',
    digest: string,
    requester?: string,
  ): Flight {
    const startMs = this.#clock.now()
    const ticket = new CallTicket()
    const promise = this.#source
      .fetch(request, { background: reason === 'refresh', ticket, requester })
      .then(
        (answer) => this.#store(request, answer, digest, reason, startMs),
        (err: unknown) => {
          throw this.#failed(request, err, digest, reason, startMs)
        },
      )
      .finally(() => this.#inflight.delete(request.token))
    // Requests that gave up (503 after the hold) no longer await the call: never unhandled.
    promise.catch(noop)
    const flight: Flight = { promise, ticket, request }
    this.#inflight.set(request.token, flight)
    return flight
  }

  #store(
    request: CheckedToken,
    answer: SourceAnswer,
    digest: string,
    reason: 'request' | 'refresh',
    startMs: number,
  ): CacheEntry {
    const { credentials, association } = answer
    const now = this.#clock.now()
    const left = credentials.expirationMs - now
    if (left <= this.#minTtlMs) {
      throw new InvalidUpstreamResponseError(
        `fetched credentials are expired or will expire within the next ${(this.#minTtlMs / 1000).toFixed(2)} seconds`,
      )
    }
    const body = serializeCredentials(credentials)
    const serveUntilMs = credentials.expirationMs - this.#minTtlMs
    // Renew at fetch + min(retention, half the lifetime), with +-10 % jitter so that a node's
    // entries do not renew in lockstep; never when the entry ends first (the token's exp too).
    const base = Math.min(this.#maxRetentionMs, left / 2)
    const refreshAt = now + base * (0.9 + 0.2 * this.#random())
    const endMs = Math.min(serveUntilMs, request.claims.expMs)
    const entry: CacheEntry = {
      request,
      body,
      headers: hitHeaders(body),
      serveUntilMs,
      expirationMs: credentials.expirationMs,
      fetchedAtMs: now,
      refreshAtMs: refreshAt < endMs ? refreshAt : Infinity,
      refreshFailures: 0,
      digest,
      association: {
        id: association.id,
        namespace: association.namespace ?? request.claims.namespace,
        serviceAccount: association.serviceAccount ?? request.claims.serviceAccount,
      },
    }
    if (this.#lru !== undefined) {
      this.#lru.set(cacheKey(request.token), entry)
      this.#metrics.cacheEntries.set(this.#lru.size)
    }
    this.#log.info(
      {
        event: 'credentials_fetched',
        reason,
        tokenDigest: digest,
        namespace: entry.association.namespace,
        serviceAccount: entry.association.serviceAccount,
        pod: request.claims.podName,
        associationId: entry.association.id,
        expiration: new Date(credentials.expirationMs).toISOString(),
        durationMs: now - startMs,
      },
      'fetched credentials',
    )
    return entry
  }

  #failed(
    request: CheckedToken,
    err: unknown,
    digest: string,
    reason: 'request' | 'refresh',
    startMs: number,
  ): Error {
    const e = toAgentError(err)
    if (isIrrecoverable(e)) {
      this.#refusals?.set(request.token, {
        error: e,
        untilMs: this.#clock.now() + this.#refusalTtlMs,
      })
      if (this.#evict(request.token)) {
        this.#log.info(
          { event: 'cache_evicted', tokenDigest: digest, code: e.code },
          'evicted credentials',
        )
      }
    }
    const { claims } = request
    // A call dropped because nobody waited for it is routine under a flood: not worth a warning.
    const level = e instanceof CallDroppedError ? 'debug' : 'warn'
    this.#log[level](
      {
        event: 'credentials_fetch_failed',
        reason,
        tokenDigest: digest,
        namespace: claims.namespace,
        serviceAccount: claims.serviceAccount,
        pod: claims.podName,
        status: e.statusCode,
        code: e.code,
        error: e.message,
        durationMs: this.#clock.now() - startMs,
      },
      'fetching credentials failed',
    )
    return e
  }

  /** Drop the entry of exactly this token (never another token's entry sharing its key). */
  #evict(token: string): boolean {
    const key = cacheKey(token)
    const lru = this.#lru
    if (lru === undefined || lru.peek(key)?.request.token !== token) return false
    lru.delete(key)
    this.#metrics.cacheEntries.set(lru.size)
    return true
  }

  #refresh(e: CacheEntry, nowMs: number): void {
    if (this.#inflight.has(e.request.token)) return
    if (!this.#refreshBucket.tryTake()) {
      e.refreshAtMs = nowMs + this.#refreshBucket.msUntilToken() + this.#random() * 1000
      this.#metrics.refreshSkipped.inc({ reason: 'rate_limited' })
      return
    }
    this.#fetch(e.request, 'refresh', e.digest).promise.then(
      () => this.#metrics.cacheState.inc({ state: 'hit' }),
      (err: unknown) => {
        const ae = toAgentError(err)
        const irrecoverable = isIrrecoverable(ae)
        this.#metrics.cacheErrors.inc({
          type: irrecoverable ? 'NonRecoverable' : 'Recoverable',
          code: boundedCode(ae.code),
        })
        if (!irrecoverable) {
          // Stale if error: keep serving while valid; retry with exponential backoff and jitter.
          const step = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** e.refreshFailures)
          e.refreshFailures++
          e.refreshAtMs = this.#clock.now() + step * (0.5 + 0.5 * this.#random())
        }
      },
    )
  }
}
