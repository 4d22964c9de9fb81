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
import { hitHeaders, serializeCredentials } from './credentials-body.js'
import type { ScopedRequest } from './entry-scope.js'
import type { ReuseReason, Scope, Slot, TokenBinding } from './key-map.js'
import { KeyMap } from './key-map.js'

export interface CacheEntry {
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
  /** For logs and reuse metrics: the token that fetched these credentials, and its pod. */
  readonly fetchedBy: Fetcher
  /** Whom the credentials were issued for, and the role (the assumed-role ARN). */
  readonly association: AssociationInfo
  readonly assumedRoleArn: string
}

/** The token that fetched an entry: its short digest, and the pod it names. */
export interface Fetcher {
  readonly digest: string
  readonly pod: string | undefined
  readonly podUid: string | undefined
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

/** An upstream call for one slot key: every concurrent request for that key awaits it. */
interface Flight {
  readonly promise: Promise<Slot>
  readonly ticket: CallTicket
  /** The request whose token the call sends. */
  readonly scoped: ScopedRequest
  /** Tokens whose requests await this call (join() finds it by the token alone). */
  readonly tokens: string[]
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
/** Refusals remembered at most (each holds a token: about 1 KB). */
const MAX_REFUSALS = 4096

const noop = (): void => {}

export class CredentialCache {
  /** Which token reads which entry; undefined when caching is off. */
  readonly #keys: KeyMap | undefined
  readonly #inflight = new Map<string, Flight>()
  /** The call each token awaits, by exact token (a pod's workers join without parsing again). */
  readonly #byToken = new Map<string, Flight>()
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
      this.#keys = new KeyMap(opts.maxEntries, () => {
        this.#metrics.cacheState.inc({ state: 'evicted' })
        this.#metrics.cacheEntries.set(this.size)
      })
    }
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
    if (flight === undefined) return undefined
    const request = flight.scoped.request.token === token ? flight.scoped.request : undefined
    if (request === undefined || !isTokenUsable(request.claims, nowMs)) return undefined
    this.#metrics.singleFlightWaits.inc()
    return this.#wait(flight, flight.scoped)
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
    if (!flight.tokens.includes(scoped.request.token)) {
      flight.tokens.push(scoped.request.token)
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
    const binding = {
      token: request.token,
      claims: request.claims,
      reuse:
        fetcher === undefined || fetcher.digest === digest
          ? undefined
          : reuseReason(slot.scope, fetcher, request.claims.podUid),
      digest,
    }
    if (binding.reuse !== undefined) this.#metrics.reusedAnswers.inc(binding.reuse)
    if (this.#keys === undefined || slot.entry === undefined) return { ...binding, slot }
    return this.#keys.bind(request, slot, binding)
  }

  /** A new token answered without a call of its own: counted, and logged at debug. */
  #saved(scoped: ScopedRequest, fetcher: Fetcher): void {
    const { claims } = scoped.request
    const reason = reuseReason(scoped.scope, fetcher, claims.podUid)
    this.#metrics.upstreamCallsSaved.inc({ reason })
    if (this.#log.isLevelEnabled('debug')) {
      this.#log.debug(
        {
          event: reason === 'rotation' ? 'credentials_kept_across_rotation' : 'credentials_shared',
          tokenDigest: tokenDigest(scoped.request.token),
          pod: claims.podName,
          namespace: claims.namespace,
          serviceAccount: claims.serviceAccount,
          fetchedBy: { pod: fetcher.pod, tokenDigest: fetcher.digest },
        },
        reason === 'rotation'
          ? "served a pod's new token the credentials its earlier token fetched"
          : 'served credentials another pod of the association fetched',
      )
    }
  }

  #fetch(
    scoped: ScopedRequest,
    reason: 'request' | 'refresh',
    digest: string,
    requester?: string,
  ): Flight {
    const startMs = this.#clock.now()
    const ticket = new CallTicket()
    const tokens: string[] = []
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
        for (const t of tokens) if (this.#byToken.get(t) === flight) this.#byToken.delete(t)
      })
    // Requests that gave up (503 after the hold) no longer await the call: never unhandled.
    promise.catch(noop)
    const flight: Flight = { promise, ticket, scoped, tokens }
    this.#inflight.set(scoped.key, flight)
    return flight
  }

  #store(
    scoped: ScopedRequest,
    answer: SourceAnswer,
    digest: string,
    reason: 'request' | 'refresh',
    startMs: number,
  ): Slot {
    const { request } = scoped
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
    // entries do not renew in lockstep; never when the entry ends first. (Whether a token is
    // still usable to renew with is seen then: a pod's newer token may have come by.)
    const base = Math.min(this.#maxRetentionMs, left / 2)
    const refreshAt = now + base * (0.9 + 0.2 * this.#random())
    const entry: CacheEntry = {
      body,
      headers: hitHeaders(body),
      serveUntilMs,
      expirationMs: credentials.expirationMs,
      fetchedAtMs: now,
      refreshAtMs: refreshAt < serveUntilMs ? refreshAt : Infinity,
      refreshFailures: 0,
      fetchedBy: { digest, pod: request.claims.podName, podUid: request.claims.podUid },
      association: {
        id: association.id,
        namespace: association.namespace ?? request.claims.namespace,
        serviceAccount: association.serviceAccount ?? request.claims.serviceAccount,
      },
      assumedRoleArn: credentials.assumedRoleArn,
    }
    const previous = this.#keys?.slot(scoped.key)?.entry
    const slot =
      this.#keys?.put(scoped.key, scoped.scope, entry, request) ??
      ({ key: scoped.key, scope: scoped.scope, entry, renewWith: request, tokens: 0 } as Slot)
    this.#metrics.cacheEntries.set(this.size)
    this.#log.info(
      {
        event: 'credentials_fetched',
        reason,
        entry: scoped.scope,
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
    if (previous !== undefined && roleChanged(previous, entry)) {
      this.#log.info(
        {
          event: 'association_changed',
          entry: scoped.scope,
          namespace: entry.association.namespace,
          serviceAccount: entry.association.serviceAccount,
          from: { associationId: previous.association.id, role: roleOf(previous.assumedRoleArn) },
          to: { associationId: entry.association.id, role: roleOf(entry.assumedRoleArn) },
          tokens: slot.tokens,
        },
        'the association or role changed: every token of the entry is served the new credentials',
      )
    }
    return slot
  }

  #failed(
    scoped: ScopedRequest,
    err: unknown,
    digest: string,
    reason: 'request' | 'refresh',
    startMs: number,
  ): Error {
    const { request } = scoped
    const e = toAgentError(err)
    if (isIrrecoverable(e)) {
      this.#refusals?.set(request.token, {
        error: e,
        untilMs: this.#clock.now() + this.#refusalTtlMs,
      })
      const slot = this.#keys?.slot(scoped.key)
      if (slot !== undefined && this.#keys?.drop(slot) === true) {
        this.#log.info(
          { event: 'cache_evicted', entry: scoped.scope, tokenDigest: digest, code: e.code },
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

/** The fetcher of a call in flight, as an entry will record it. */
function fetcherOf(request: CheckedToken): Fetcher {
  return {
    digest: tokenDigest(request.token),
    pod: request.claims.podName,
    podUid: request.claims.podUid,
  }
}

/** A token reads what an earlier token of its own pod fetched (rotation), or another pod's. */
function reuseReason(scope: Scope, fetcher: Fetcher, podUid: string | undefined): ReuseReason {
  return scope === 'pod' || (podUid !== undefined && fetcher.podUid === podUid)
    ? 'rotation'
    : 'shared'
}

/** The role of an assumed-role ARN (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`). */
function roleOf(assumedRoleArn: string): string {
  const m = /^arn:[^:]+:sts::(\d+):assumed-role\/([^/]+)\//.exec(assumedRoleArn)
  return m === null ? assumedRoleArn : `${m[1]}:${m[2]}`
}

function roleChanged(a: CacheEntry, b: CacheEntry): boolean {
  return (
    a.association.id !== b.association.id || roleOf(a.assumedRoleArn) !== roleOf(b.assumedRoleArn)
  )
}
