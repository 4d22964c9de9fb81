// The credential cache: a hit needs the exact token string a binding was made for, and costs one
// Map lookup on a number, one string comparison and a pointer to its entry (no JWT parsing, no
// hashing). Which token reads which entry is the key map's (per token; per pod or association
// once verified, entry-scope.ts); one upstream call in flight per entry key, which every request
// for that key awaits; entries served while the credentials have more than a floor of life left
// and the token is usable; renewed in the background with the newest token after a hit past
// their renewal time, under a rate limit, keeping the old credentials while a renewal fails with
// a recoverable error; a final refusal drops the entry for every token. Over 250 lines: lookup,
// single flight and renewal share the entries and the flights, and read best side by side.

import type { AgentError } from '../errors.js'
import { isIrrecoverable, toAgentError } from '../errors.js'
import type { AgentMetrics } from '../metrics/metrics.js'
import { isTokenUsable } from '../token/validity.js'
import { CallTicket, holdWhileQueued } from '../upstream/call-ticket.js'
import { boundedCode, refusesOnlyTheToken } from '../upstream/error-codes.js'
import type { CredentialSource, SourceAnswer } from '../upstream/types.js'
import type { Clock } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import { tokenDigest } from '../util/logger.js'
import { TokenBucket } from '../util/token-bucket.js'
import type { ScopedRequest } from './entry-scope.js'
import type { CacheEntry, Fetcher } from './cache-entry.js'
import { buildEntry, fetcherOf, reuseReason, roleChanged } from './cache-entry.js'
import type { FetchReason } from './cache-events.js'
import { CacheEvents } from './cache-events.js'
import type { Slot, TokenBinding } from './key-map.js'
import { KeyMap, newBinding } from './key-map.js'
import { Refusals } from './refusals.js'

export interface CredentialCacheOptions {
  source: CredentialSource
  clock: Clock
  metrics: AgentMetrics
  logger: Logger
  /** The most tokens held (LRU; each bound to an entry); 0 disables caching (every request calls the upstream; concurrent ones share a call). */
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

/** An upstream call for one slot key: every concurrent request for that key awaits it. */
interface Flight {
  readonly promise: Promise<Slot>
  readonly ticket: CallTicket
  /** The request whose token the call sends. */
  readonly scoped: ScopedRequest
  /** The requests awaiting this call, by token (join() finds it by the token alone). */
  readonly waiting: Map<string, ScopedRequest>
}

/** What a request that may start an upstream call brings. */
export interface ResolveOptions {
  /** The pod's source address: places a new call in the upstream queue's fair share. */
  requester?: string | undefined
  /** Asked only when a call would start: a refusal (a limit) answers the request instead. */
  admit?: (() => AgentError | undefined) | undefined
}

/** How soon an entry without a usable token to renew with looks again for one. */
const NO_TOKEN_RECHECK_MS = 60_000
const RETRY_BASE_MS = 5_000
const RETRY_CAP_MS = 120_000

const noop = (): void => {}

export class CredentialCache {
  /** Which token reads which entry; undefined when caching is off. */
  readonly #keys: KeyMap | undefined
  readonly #inflight = new Map<string, Flight>()
  /** The call each token awaits, by exact token (a pod's workers join without parsing again). */
  readonly #byToken = new Map<string, Flight>()
  readonly #refusals: Refusals
  readonly #source: CredentialSource
  readonly #clock: Clock
  readonly #metrics: AgentMetrics
  readonly #events: CacheEvents
  readonly #minTtlMs: number
  readonly #maxRetentionMs: number
  readonly #queueHoldMs: number
  readonly #refreshBucket: TokenBucket
  readonly #random: () => number

  constructor(opts: CredentialCacheOptions) {
    this.#source = opts.source
    this.#clock = opts.clock
    this.#metrics = opts.metrics
    this.#events = new CacheEvents(opts.logger)
    this.#minTtlMs = opts.minTtlMs ?? 15_000
    this.#maxRetentionMs = opts.maxRetentionMs
    this.#queueHoldMs = opts.queueHoldMs ?? 700
    this.#random = opts.random ?? Math.random
    this.#refusals = new Refusals(opts.refusalTtlMs ?? 0)
    this.#refreshBucket = new TokenBucket({
      clock: opts.clock,
      ratePerSecond: opts.refreshQps,
      burst: Math.max(1, opts.refreshQps),
    })
    if (opts.maxEntries > 0 && opts.maxRetentionMs > 0) {
      this.#keys = new KeyMap(opts.maxEntries, () => {
        this.#metrics.cacheState.inc({ state: 'evicted' })
        this.#metrics.cacheEntries.set(this.size)
      })
    }
    this.#metrics.cacheTokensMax.set(this.#keys === undefined ? 0 : opts.maxEntries)
  }

  /** Credential entries currently held. */
  get size(): number {
    return this.#keys?.size ?? 0
  }

  /** Slots with an upstream call queued or in flight. */
  get inflight(): number {
    return this.#inflight.size
  }

  /**
   * The hot path: a servable entry for this exact token, or undefined. Never waits; kicks off a
   * background renewal when the entry is past its renewal time.
   */
  lookup(token: string, nowMs: number): CacheEntry | undefined {
    const b = this.#keys?.binding(token)
    if (b === undefined) return undefined
    const e = b.slot.entry
    if (e === undefined || nowMs >= e.serveUntilMs || !isTokenUsable(b.claims, nowMs)) {
      return undefined
    }
    if (nowMs >= e.refreshAtMs) this.#refresh(b.slot, nowMs)
    if (b.reuse !== undefined) this.#metrics.reusedAnswers.inc(b.reuse)
    return e
  }

  /** The binding of exactly this token (for trace lines: its own digest). */
  binding(token: string): TokenBinding | undefined {
    return this.#keys?.binding(token)
  }

  /**
   * A request for a token whose call is queued or in flight: await that call, without parsing
   * the token again (it was checked when the call started). Undefined when there is no such
   * call, or when the token is no longer usable (the caller's checks then say why).
   */
  join(token: string, nowMs: number): Promise<CacheEntry> | undefined {
    const flight = this.#byToken.get(token)
    const scoped = flight?.waiting.get(token)
    if (flight === undefined || scoped === undefined) return undefined
    if (!isTokenUsable(scoped.request.claims, nowMs)) return undefined
    this.#metrics.singleFlightWaits.inc()
    return this.#wait(flight, scoped)
  }

  /**
   * The upstream's final refusal of this exact token, if it came within the last refusalTtlMs: the
   * answer for a request that would otherwise start a call (a pod retrying a bad token costs one
   * call, not one per retry). Counted as replayed.
   */
  refusal(token: string, nowMs: number): AgentError | undefined {
    const refused = this.#refusals.get(token, nowMs)
    if (refused !== undefined) this.#metrics.refusalsReplayed.inc()
    return refused
  }

  /**
   * The miss path: credentials for a token that was just checked and scoped. Served at once from
   * its slot's entry when another token of the same pod or association fetched it; else joins
   * the call in flight for the slot, or starts one (once `admit` allows). The call belongs to the
   * cache, not to the request: a client that gives up does not cancel it, and its result is
   * cached for the client's retry.
   */
  resolve(scoped: ScopedRequest, opts: ResolveOptions = {}): Promise<CacheEntry> {
    const now = this.#clock.now()
    const slot = this.#keys?.slot(scoped.key)
    const e = slot?.entry
    if (slot !== undefined && e !== undefined && now < e.serveUntilMs) {
      this.#saved(scoped, e.fetchedBy)
      if (now >= e.refreshAtMs) this.#refresh(slot, now)
      return Promise.resolve(this.#bind(scoped, slot).slot.entry as CacheEntry)
    }
    let flight = this.#inflight.get(scoped.key)
    if (flight !== undefined) {
      this.#metrics.singleFlightWaits.inc()
      if (flight.scoped.request.token !== scoped.request.token) {
        this.#saved(scoped, fetcherOf(flight.scoped.request))
      }
    } else {
      const refused = opts.admit?.()
      if (refused !== undefined) return Promise.reject(refused)
      this.#metrics.cacheState.inc({ state: 'miss' })
      flight = this.#fetch(scoped, 'request', tokenDigest(scoped.request.token), opts.requester)
    }
    if (!flight.waiting.has(scoped.request.token)) {
      flight.waiting.set(scoped.request.token, scoped)
      this.#byToken.set(scoped.request.token, flight)
    }
    return this.#wait(flight, scoped)
  }

  /** One request's wait: never long while the call waits in a paced queue (call-ticket.ts). */
  #wait(flight: Flight, scoped: ScopedRequest): Promise<CacheEntry> {
    const bound = flight.promise.then((slot) => this.#bind(scoped, slot).slot.entry as CacheEntry)
    return holdWhileQueued(bound, flight.ticket, {
      clock: this.#clock,
      holdMs: this.#queueHoldMs,
      onRefused: () => this.#metrics.queueRejections.inc(),
    })
  }

  /** Bind a request's token to the slot it was answered from (a later request is then a hit). */
  #bind(scoped: ScopedRequest, slot: Slot): TokenBinding {
    const { request } = scoped
    const digest = tokenDigest(request.token)
    const fetcher = slot.entry?.fetchedBy
    const reuse =
      fetcher === undefined || fetcher.digest === digest
        ? undefined
        : reuseReason(slot.scope, fetcher, request.claims.podUid)
    if (reuse !== undefined) this.#metrics.reusedAnswers.inc(reuse)
    if (this.#keys === undefined || slot.entry === undefined) {
      return newBinding(request, slot, reuse, digest)
    }
    const binding = this.#keys.bind(request, slot, reuse, digest)
    this.#metrics.cacheTokens.set(this.#keys.tokens)
    return binding
  }

  /** A new token answered without a call of its own: counted, and logged at debug. */
  #saved(scoped: ScopedRequest, fetcher: Fetcher): void {
    const reason = reuseReason(scoped.scope, fetcher, scoped.request.claims.podUid)
    this.#metrics.upstreamCallsSaved.inc({ reason })
    this.#events.saved(scoped, fetcher, reason)
  }

  #fetch(scoped: ScopedRequest, reason: FetchReason, digest: string, requester?: string): Flight {
    const startMs = this.#clock.now()
    const ticket = new CallTicket()
    const waiting = new Map<string, ScopedRequest>()
    const promise = this.#source
      .fetch(scoped.request, { background: reason === 'refresh', ticket, requester })
      .then(
        (answer) => this.#store(scoped, answer, digest, reason, startMs),
        (err: unknown) => {
          throw this.#failed(scoped, err, digest, reason, startMs)
        },
      )
      .finally(() => {
        this.#inflight.delete(scoped.key)
        for (const t of waiting.keys()) if (this.#byToken.get(t) === flight) this.#byToken.delete(t)
      })
    // Requests that gave up (503 after the hold) no longer await the call: never unhandled.
    promise.catch(noop)
    const flight: Flight = { promise, ticket, scoped, waiting }
    this.#inflight.set(scoped.key, flight)
    return flight
  }

  #store(
    scoped: ScopedRequest,
    answer: SourceAnswer,
    digest: string,
    reason: FetchReason,
    startMs: number,
  ): Slot {
    const { request } = scoped
    const now = this.#clock.now()
    const entry = buildEntry(request, answer, digest, {
      nowMs: now,
      minTtlMs: this.#minTtlMs,
      maxRetentionMs: this.#maxRetentionMs,
      random: this.#random,
    })
    const previous = this.#keys?.slot(scoped.key)?.entry
    const slot =
      this.#keys?.put(scoped.key, scoped.scope, entry, request) ??
      ({ key: scoped.key, scope: scoped.scope, entry, renewWith: request, tokens: 0 } as Slot)
    this.#metrics.cacheEntries.set(this.size)
    this.#events.fetched(scoped, entry, reason, now - startMs)
    if (previous !== undefined && roleChanged(previous, entry)) {
      this.#events.roleChanged(scoped, previous, entry, slot.tokens)
    }
    return slot
  }

  #failed(
    scoped: ScopedRequest,
    err: unknown,
    digest: string,
    reason: FetchReason,
    startMs: number,
  ): Error {
    const e = toAgentError(err)
    if (isIrrecoverable(e)) {
      const now = this.#clock.now()
      this.#refusals.remember(scoped.request.token, e, now)
      const slot = this.#keys?.slot(scoped.key)
      if (
        slot?.entry !== undefined &&
        reason === 'refresh' &&
        refusesOnlyTheToken(e.code) &&
        this.#keys?.renewWithAnother(slot, scoped.request.token, now) === true
      ) {
        // A token of a deleted pod, say: the credentials stay, renewed at the next hit with
        // another token of the entry (the pods still asking keep theirs coming).
        slot.entry.refreshAtMs = now
        this.#events.renewerRefused(scoped, digest, e.code, slot.renewWith)
      } else if (slot !== undefined && this.#keys?.drop(slot) === true) {
        this.#events.evicted(scoped, digest, e.code)
      }
    }
    this.#events.failed(scoped, e, digest, reason, this.#clock.now() - startMs)
    return e
  }

  #refresh(slot: Slot, nowMs: number): void {
    const e = slot.entry
    if (e === undefined || this.#inflight.has(slot.key)) return
    const renewWith = slot.renewWith
    if (!isTokenUsable(renewWith.claims, nowMs)) {
      e.refreshAtMs = nowMs + NO_TOKEN_RECHECK_MS // no usable token to renew with yet
      return
    }
    if (!this.#refreshBucket.tryTake()) {
      e.refreshAtMs = nowMs + this.#refreshBucket.msUntilToken() + this.#random() * 1000
      this.#metrics.refreshSkipped.inc({ reason: 'rate_limited' })
      return
    }
    const scoped: ScopedRequest = {
      request: renewWith,
      key: slot.key,
      scope: slot.scope,
      pod: undefined,
    }
    this.#fetch(scoped, 'refresh', tokenDigest(renewWith.token)).promise.then(
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
