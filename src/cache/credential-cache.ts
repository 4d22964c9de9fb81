// The credential cache: a hit needs the exact token string the upstream accepted, and costs one
// Map lookup on a short key plus one string comparison (no JWT parse, no SHA-256); one upstream call in flight per
// token that every concurrent request awaits; entries served until min(credential expiry - floor,
// token exp); renewed in the background after a hit past their renewal time, under a rate limit,
// keeping the old credentials while a renewal fails with a recoverable error.

import { LRUCache } from 'lru-cache'
import {
  AgentError,
  InvalidUpstreamResponseError,
  RequestError,
  UpstreamError,
  UpstreamQueuedError,
  isIrrecoverable,
  toAgentError,
} from '../errors.js'
import type { AgentMetrics } from '../metrics/metrics.js'
import { boundedCode } from '../metrics/metrics.js'
import type { TokenClaims } from '../server/token.js'
import { NBF_SKEW_MS } from '../server/token.js'
import type { CredentialFetcher } from '../upstream/types.js'
import type { Clock, TimerHandle } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import { tokenDigest } from '../util/logger.js'
import { TokenBucket } from '../util/token-bucket.js'
import { serializeCredentials } from './credentials-body.js'
import type { GateJob } from './upstream-gate.js'
import { UpstreamGate } from './upstream-gate.js'

export interface CacheEntry {
  /** The exact token the upstream accepted: a hit requires this very string. */
  readonly token: string
  /** Pre-serialised 200 body. */
  readonly body: Buffer
  /** Response headers for a hit, as a flat [name, value, ...] list. */
  readonly headers: readonly string[]
  /** Served while now < serveUntilMs (min of credential expiry - floor and token exp). */
  readonly serveUntilMs: number
  /** Token `nbf` (ms); not served before nbf - NBF_SKEW_MS. */
  readonly tokenNbfMs: number
  /** Token `exp` (ms). */
  readonly tokenExpMs: number
  readonly expirationMs: number
  readonly fetchedAtMs: number
  /** Renew in the background after this instant (Infinity: never worth renewing). */
  refreshAtMs: number
  refreshFailures: number
  /** For logs: short digest of the token, and who it belongs to. */
  readonly digest: string
  readonly namespace: string | undefined
  readonly serviceAccount: string | undefined
  readonly podName: string | undefined
  readonly associationId: string | undefined
  /** The end of this entry's trace line for a hit, built on the first traced hit. */
  traceTail?: string
}

export interface CredentialCacheOptions {
  fetcher: CredentialFetcher
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
   * How long a request may wait for its upstream call to leave the gate's queue before it is
   * answered 503 with `Retry-After` (the call stays queued). SDKs give up after about 1 s.
   * Default 700 ms.
   */
  queueHoldMs?: number
  /** Upstream calls in flight at first (slow start) and at most. Defaults 8 and 32. */
  initialUpstreamWindow?: number
  maxUpstreamWindow?: number
}

/** An upstream call for one token: every concurrent request for that token awaits it. */
interface Flight {
  readonly promise: Promise<CacheEntry>
  readonly job: GateJob
  /** Called when a throttled call goes back to the gate's queue. */
  readonly requeued: Set<() => void>
  /** The token's `exp` and `nbf` (ms), checked when a request joins without parsing it. */
  readonly expMs: number
  readonly nbfMs: number
}

/**
 * The Map key of a token: a number made of its length and its last 7 characters (for a JWT,
 * 42 bits of its signature), exact below 2^53. V8 hashes every character of a fresh string on each
 * lookup (a 1.1 KB token: ~2 us per hit), and even a 32-character tail, sliced, costs a flatten,
 * a hash and a slow compare (about 800 instructions per hit under callgrind); a number costs a
 * few. The key only finds a candidate: a hit also requires `entry.token === token`, so two tokens
 * sharing a key can only ever cause a miss, and a forged token never reads another's entry (nor
 * evicts it: only a successful fetch stores an entry).
 */
export function cacheKey(token: string): number {
  const n = token.length
  // 7 bits per character (c & 127: base64url and every other printable ASCII character keep
  // their own value), 49 bits in all, times 16 for the length's low 4 bits: below 2^53.
  let k = n & 15
  for (let i = n < 7 ? 0 : n - 7; i < n; i++) k = k * 128 + (token.charCodeAt(i) & 127)
  return k
}

const RETRY_BASE_MS = 5_000
const RETRY_CAP_MS = 120_000

const noop = (): void => {}

function isThrottle(err: unknown): boolean {
  return err instanceof UpstreamError && err.statusCode === 429
}

function expiredInQueue(): Error {
  return new RequestError(
    'InvalidTokenClaims',
    400,
    'Service account token failed basic claim validations: token is expired',
  )
}

function queueFull(): Error {
  return new AgentError(
    'UpstreamThrottled',
    503,
    'too many EKS Auth calls are queued on this node: retry after 5 s',
    { retryAfterSeconds: 5 },
  )
}

export class CredentialCache {
  readonly #lru: LRUCache<number, CacheEntry> | undefined
  readonly #inflight = new Map<string, Flight>()
  /** Requests past their hold time while the gate was open: looked at again when it paces. */
  readonly #openWaiters = new Set<() => void>()
  readonly #gate: UpstreamGate
  readonly #queueHoldMs: number
  readonly #fetcher: CredentialFetcher
  readonly #clock: Clock
  readonly #metrics: AgentMetrics
  readonly #log: Logger
  readonly #minTtlMs: number
  readonly #maxRetentionMs: number
  readonly #refreshBucket: TokenBucket
  readonly #random: () => number

  constructor(opts: CredentialCacheOptions) {
    this.#fetcher = opts.fetcher
    this.#clock = opts.clock
    this.#metrics = opts.metrics
    this.#log = opts.logger
    this.#minTtlMs = opts.minTtlMs ?? 15_000
    this.#maxRetentionMs = opts.maxRetentionMs
    this.#random = opts.random ?? Math.random
    this.#queueHoldMs = opts.queueHoldMs ?? 700
    this.#gate = new UpstreamGate({
      clock: opts.clock,
      isThrottle,
      initialWindow: opts.initialUpstreamWindow,
      maxWindow: opts.maxUpstreamWindow,
      onFull: queueFull,
      onPacing: () => {
        const waiters = [...this.#openWaiters]
        this.#openWaiters.clear()
        for (const look of waiters) look()
      },
    })
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

  /** The upstream gate's state, for metrics. */
  get upstreamQueue(): { queued: number; pacePerSecond: number } {
    return { queued: this.#gate.queued, pacePerSecond: this.#gate.pacePerSecond }
  }

  /**
   * The hot path: a servable entry for this exact token, or undefined. Never waits; kicks off a
   * background renewal when the entry is past its renewal time.
   */
  lookup(token: string, nowMs: number): CacheEntry | undefined {
    const e = this.#lru?.get(cacheKey(token))
    if (
      e === undefined ||
      e.token !== token ||
      nowMs >= e.serveUntilMs ||
      nowMs < e.tokenNbfMs - NBF_SKEW_MS
    ) {
      return undefined
    }
    if (nowMs >= e.refreshAtMs) this.#refresh(token, e, nowMs)
    return e
  }

  /**
   * A request for a token whose call is queued or in flight: await that call, without parsing
   * the token again (it was parsed when the call started). Undefined when there is no such call,
   * or when the token is no longer within its validity (the caller's checks then say why).
   */
  join(token: string, nowMs: number): Promise<CacheEntry> | undefined {
    const flight = this.#inflight.get(token)
    if (flight === undefined || nowMs >= flight.expMs || nowMs < flight.nbfMs - NBF_SKEW_MS) {
      return undefined
    }
    this.#metrics.singleFlightWaits.inc()
    return this.#wait(flight)
  }

  /**
   * The miss path: credentials for a token whose claims were just checked. Joins the call in
   * flight for this token, or starts one. The call belongs to the cache, not to the request: a
   * client that gives up does not cancel it, and its result is cached for the client's retry.
   */
  resolve(token: string, claims: TokenClaims): Promise<CacheEntry> {
    let flight = this.#inflight.get(token)
    if (flight !== undefined) {
      this.#metrics.singleFlightWaits.inc()
    } else {
      this.#metrics.cacheState.inc({ state: 'miss' })
      flight = this.#fetch(token, claims, 'request')
    }
    return this.#wait(flight)
  }

  /**
   * A request awaits its token's call, but never for long while the call waits in a paced queue
   * (EKS Auth throttling this node): if the call is not likely to start within the hold time, or
   * has not started when it runs out, the request is answered 503 with `Retry-After`. The call
   * stays queued either way, and its result is cached for the client's retry. While the gate is
   * open (no throttling) the queue only waits for one of the calls in flight to end, so the
   * request waits too, and looks again if the gate starts pacing. Once the call runs, the
   * request waits for its answer (the upstream client bounds that).
   */
  #wait(flight: Flight): Promise<CacheEntry> {
    const gate = this.#gate
    const clock = this.#clock
    const deadline = clock.now() + this.#queueHoldMs
    const tooLate = (): UpstreamQueuedError | undefined => {
      if (flight.job.started || gate.pacePerSecond === 0) return undefined
      const now = clock.now()
      const eta = gate.etaMs(flight.job)
      if (now < deadline && now + eta <= deadline) return undefined
      this.#metrics.queueRejections.inc()
      return new UpstreamQueuedError(eta)
    }
    const early = tooLate()
    if (early !== undefined) return Promise.reject(early)
    return new Promise<CacheEntry>((resolve, reject) => {
      let timer: TimerHandle | undefined
      const check = (): void => {
        const err = tooLate()
        if (err !== undefined) {
          done()
          reject(err)
        } else if (!flight.job.started && timer === undefined) {
          const now = clock.now()
          if (now < deadline) {
            timer = clock.setTimer(() => {
              timer = undefined
              check()
            }, deadline - now)
          } else {
            // Past the hold time with the gate open: look again when it starts pacing.
            this.#openWaiters.add(check)
          }
        }
      }
      const done = (): void => {
        timer?.cancel()
        flight.requeued.delete(check)
        this.#openWaiters.delete(check)
      }
      // A throttled call goes back to the queue: its waiters look again then.
      flight.requeued.add(check)
      check()
      flight.promise.then(
        (entry) => {
          done()
          resolve(entry)
        },
        (err: unknown) => {
          done()
          reject(err)
        },
      )
    })
  }

  #fetch(
    token: string,
    claims: Pick<TokenClaims, 'expMs' | 'nbfMs' | 'namespace' | 'serviceAccount' | 'podName'>,
    reason: 'request' | 'refresh',
  ): Flight {
    const startMs = this.#clock.now()
    const digest = tokenDigest(token)
    const requeued = new Set<() => void>()
    const { promise: call, job } = this.#gate.submit(() => this.#fetcher.fetchCredentials(token), {
      background: reason === 'refresh',
      deadlineMs: claims.expMs,
      onExpired: expiredInQueue,
      onRequeue: () => {
        for (const check of requeued) check()
      },
    })
    const p = call.then(
      (creds) => {
        const now = this.#clock.now()
        const left = creds.expirationMs - now
        if (left <= this.#minTtlMs) {
          throw new InvalidUpstreamResponseError(
            `fetched credentials are expired or will expire within the next ${(this.#minTtlMs / 1000).toFixed(2)} seconds`,
          )
        }
        const body = serializeCredentials(creds)
        const key = cacheKey(token)
        const serveUntilMs = Math.min(creds.expirationMs - this.#minTtlMs, claims.expMs)
        // Renew at fetch + min(retention, half the lifetime), with +-10 % jitter so that a node's
        // entries do not renew in lockstep; never when the token expires first.
        const base = Math.min(this.#maxRetentionMs, left / 2)
        const refreshAt = now + base * (0.9 + 0.2 * this.#random())
        const entry: CacheEntry = {
          token,
          body,
          headers: ['Content-Type', 'application/json', 'Content-Length', String(body.length)],
          serveUntilMs,
          tokenNbfMs: claims.nbfMs,
          tokenExpMs: claims.expMs,
          expirationMs: creds.expirationMs,
          fetchedAtMs: now,
          refreshAtMs: refreshAt < serveUntilMs ? refreshAt : Infinity,
          refreshFailures: 0,
          digest,
          namespace: creds.namespace ?? claims.namespace,
          serviceAccount: creds.serviceAccount ?? claims.serviceAccount,
          podName: claims.podName,
          associationId: creds.associationId,
        }
        this.#lru?.set(key, entry)
        this.#log.info(
          {
            event: 'credentials_fetched',
            reason,
            tokenDigest: digest,
            namespace: entry.namespace,
            serviceAccount: entry.serviceAccount,
            pod: entry.podName,
            associationId: entry.associationId,
            expiration: new Date(creds.expirationMs).toISOString(),
            durationMs: now - startMs,
          },
          'fetched credentials',
        )
        return entry
      },
      (err: unknown) => {
        const e = toAgentError(err)
        const irrecoverable = isIrrecoverable(e)
        if (irrecoverable && this.#evict(token)) {
          this.#log.info(
            { event: 'cache_evicted', tokenDigest: digest, code: e.code },
            'evicted credentials',
          )
        }
        this.#log.warn(
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
        throw e
      },
    )
    const flight: Flight = {
      promise: p.finally(() => this.#inflight.delete(token)),
      job,
      requeued,
      expMs: claims.expMs,
      nbfMs: claims.nbfMs,
    }
    // Requests that gave up (503 after the hold) no longer await the call: never unhandled.
    flight.promise.catch(noop)
    this.#inflight.set(token, flight)
    return flight
  }

  /** Drop the entry of exactly this token (never another token's entry sharing its key). */
  #evict(token: string): boolean {
    const key = cacheKey(token)
    const lru = this.#lru
    return lru !== undefined && lru.peek(key)?.token === token && lru.delete(key)
  }

  #refresh(token: string, e: CacheEntry, nowMs: number): void {
    if (this.#inflight.has(token)) return
    if (!this.#refreshBucket.tryTake()) {
      e.refreshAtMs = nowMs + this.#refreshBucket.msUntilToken() + this.#random() * 1000
      this.#metrics.refreshSkipped.inc({ reason: 'rate_limited' })
      return
    }
    this.#fetch(
      token,
      {
        expMs: e.tokenExpMs,
        nbfMs: e.tokenNbfMs,
        namespace: e.namespace,
        serviceAccount: e.serviceAccount,
        podName: e.podName,
      },
      'refresh',
    ).promise.then(
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
