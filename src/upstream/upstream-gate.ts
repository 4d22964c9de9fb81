// The gate every upstream credential call goes through. It keeps a throttled upstream from being
// hammered by the node it serves, so that a herd of pods costs about one call per pod however
// hard EKS Auth pushes back:
// - Open (the normal state): calls start at once, at most `window` in flight. The window starts
//   small and grows by one per success (slow start), so a herd's first burst overshoots a
//   throttling upstream by a few calls, not by the whole herd.
// - Paced: after a 429, calls start no faster than `rate` per second, request calls before
//   background renewals, and request calls round-robin across the pods that asked for them (each
//   pod's own calls first in, first out; fair-queue.ts). The first rate is what the upstream
//   accepted over the last second (a floor of its quota; a call it answered with a refusal, such
//   as an invalid token, was accepted too); it then doubles per second (one call per accepted
//   call, as TCP's slow start does) until a 429 from a call sent at the new pace cuts it by 15 %.
//   From then on it grows by about 5 % per second, and each further 429 cuts 15 % (one cut per
//   round: calls sent before a cut do not cut again). A request call that was throttled goes back
//   to the head of its pod's queue and is tried again, so a pod's retry finds it done; after
//   MAX_THROTTLED_TRIES its waiters get the 429.
// - Back to open after IDLE_RESET_MS without a 429 and with nothing queued.
// A queued request call that everybody who asked for it has given up on (they got a 503 or an
// answer and did not ask again within ABANDONED_MS) is dropped without being made, and while
// paced each pod may have at most `maxQueuedPerRequester` calls waiting.
// Nothing here runs on the hot path (a cache hit): only misses and renewals come through.
// Over 250 lines: the open and paced states share the queues, the window and the rate, and each
// rule reads best beside the others.

import type { Clock, TimerHandle } from '../util/clock.js'
import type { CallTicket } from './call-ticket.js'
import { FairQueue, JobQueue } from './fair-queue.js'

export interface GateJob {
  /** True while the call runs (false while it waits in the queue). */
  readonly started: boolean
}

export interface SubmitOptions {
  /** A background renewal: waits behind every request call, is never retried on 429. */
  background: boolean
  /** Called just before the call starts; an error it throws rejects the call instead. */
  beforeStart?: () => void
  /** Kept current while the call waits (see call-ticket.ts). */
  ticket?: CallTicket | undefined
  /** Who asked for the call (a pod's source address): its turn in the round-robin. */
  requester?: string | undefined
}

export interface UpstreamGateOptions {
  clock: Clock
  /** Whether an error is the upstream's throttling answer (429). */
  isThrottle: (err: unknown) => boolean
  /**
   * Whether an error is an answer the upstream gave to a call it accepted (a 4xx other than 429:
   * an invalid token, no association). For pacing it counts as a success: the call went through.
   * Default: never.
   */
  isAccepted?: (err: unknown) => boolean
  /** Calls in flight at first. Default 8. */
  initialWindow?: number
  /** Calls in flight at most. Default 32. */
  maxWindow?: number
  /** Request calls waiting at most; more are refused with onFull(). Default 10 000. */
  maxQueue?: number
  onFull?: () => Error
  /**
   * Request calls one requester may have waiting while paced; more are refused with
   * onRequesterFull(). Default 32. Calls of no known requester share one turn and no such bound.
   */
  maxQueuedPerRequester?: number
  onRequesterFull?: () => Error
  /** A dropped call (nobody waits for it any more) rejects with this. */
  onDropped?: () => Error
  /** Called when the gate starts pacing (the first 429 while open), after the pace is set. */
  onPacing?: () => void
  /** Told the queue length and the pace (0 while open) whenever either may have changed. */
  onState?: (queued: number, pacePerSecond: number) => void
}

interface Job<T> extends GateJob {
  started: boolean
  /** The requester's turn in the round-robin ('' when unknown). */
  readonly key: string
  readonly run: () => Promise<T>
  readonly resolve: (v: T) => void
  readonly reject: (e: unknown) => void
  readonly opts: SubmitOptions
  throttledTries: number
  startedAtMs: number
}

type AnyJob = Job<unknown>

/** Calls in flight at most, by default (also the EKS Auth client's connection count). */
export const DEFAULT_MAX_WINDOW = 32

const MIN_RATE = 1
const CUT = 0.85
/** Added to the rate per success once a 429 has been seen at the pace: about 5 % per second. */
const GROWTH = 0.05
const IDLE_RESET_MS = 30_000
const MAX_THROTTLED_TRIES = 10
const STARTS_PER_TURN = 16
/**
 * How long a queued call is kept after its last requester stopped waiting: a pod's SDK retries
 * within 1-2 s (fromHttp and botocore wait 1 s), and finds the call still queued.
 */
export const ABANDONED_MS = 3000

export class UpstreamGate {
  readonly #clock: Clock
  readonly #isThrottle: (err: unknown) => boolean
  readonly #isAccepted: (err: unknown) => boolean
  readonly #initialWindow: number
  readonly #maxWindow: number
  readonly #maxQueue: number
  readonly #onFull: () => Error
  readonly #maxQueuedPerRequester: number
  readonly #onRequesterFull: () => Error
  readonly #onDropped: () => Error
  readonly #onPacing: () => void
  readonly #onState: (queued: number, pacePerSecond: number) => void
  readonly #requests = new FairQueue<AnyJob>()
  readonly #background = new JobQueue<AnyJob>()
  /** Completion times of successful calls over the last second (to size the first pace). */
  readonly #recentSuccesses: number[] = []
  #window: number
  #inflight = 0
  /** Calls per second while paced; Infinity while open. */
  #rate = Infinity
  /** The rate after the last cut (Infinity: none since pacing began); below it, fast growth. */
  #ceiling = Infinity
  #nextStartMs = 0
  #lastCutMs = -Infinity
  #lastThrottleMs = -Infinity
  #timer: TimerHandle | undefined
  #sweepTimer: TimerHandle | undefined

  constructor(opts: UpstreamGateOptions) {
    this.#clock = opts.clock
    this.#isThrottle = opts.isThrottle
    this.#isAccepted = opts.isAccepted ?? ((): boolean => false)
    this.#initialWindow = opts.initialWindow ?? 8
    this.#maxWindow = Math.max(this.#initialWindow, opts.maxWindow ?? DEFAULT_MAX_WINDOW)
    this.#maxQueue = opts.maxQueue ?? 10_000
    this.#onFull =
      opts.onFull ?? (() => new Error('too many upstream calls waiting; try again later'))
    this.#maxQueuedPerRequester = opts.maxQueuedPerRequester ?? 32
    this.#onRequesterFull =
      opts.onRequesterFull ?? (() => new Error('too many upstream calls waiting for one requester'))
    this.#onDropped = opts.onDropped ?? (() => new Error('dropped: nobody waits for this call'))
    this.#onPacing = opts.onPacing ?? ((): void => {})
    this.#onState = opts.onState ?? ((): void => {})
    this.#window = this.#initialWindow
  }

  /** Calls waiting to start (requests and renewals). */
  get queued(): number {
    return this.#requests.length + this.#background.length
  }

  /** Calls running. */
  get inflight(): number {
    return this.#inflight
  }

  /** Calls per second allowed while paced; 0 while open. */
  get pacePerSecond(): number {
    return this.#rate === Infinity ? 0 : this.#rate
  }

  /** Run `run` when the gate allows; the job tells whether it has started. */
  submit<T>(run: () => Promise<T>, opts: SubmitOptions): { promise: Promise<T>; job: GateJob } {
    let resolve!: (v: T) => void
    let reject!: (e: unknown) => void
    const promise = new Promise<T>((res, rej) => {
      resolve = res
      reject = rej
    })
    const key = opts.requester ?? ''
    const job: Job<T> = {
      started: false,
      key,
      run,
      resolve,
      reject,
      opts,
      throttledTries: 0,
      startedAtMs: 0,
    }
    if (!opts.background) {
      if (this.#requests.length >= this.#maxQueue) {
        reject(this.#onFull())
        return { promise, job }
      }
      if (
        this.#rate !== Infinity &&
        key !== '' &&
        this.#requests.lengthOf(key) >= this.#maxQueuedPerRequester
      ) {
        reject(this.#onRequesterFull())
        return { promise, job }
      }
    }
    if (opts.background) this.#background.push(job as AnyJob)
    else this.#requests.push(key, job as AnyJob)
    opts.ticket?.place({
      queued: () => !job.started,
      etaMs: () => this.#waitMs(job as AnyJob),
      abandoned: () => this.#sweepSoon(),
    })
    this.#pump()
    return { promise, job }
  }

  /**
   * About how long until a queued job starts (0 once started). Exact enough to choose between
   * holding a request and telling its client when to come back.
   */
  etaMs(job: GateJob): number {
    if (job.started) return 0
    // Open: a free slot comes with the next answer; the hold timer bounds the wait.
    if (this.#rate === Infinity) return 0
    const ahead = this.#position(job as AnyJob)
    return Math.max(0, this.#nextStartMs - this.#clock.now()) + (ahead * 1000) / this.#rate
  }

  /** A queued job's wait while paced; undefined once started or while open (see QueuePlace). */
  #waitMs(job: AnyJob): number | undefined {
    return job.started || this.#rate === Infinity ? undefined : this.etaMs(job)
  }

  /** Calls that start before this one: its own place in the round-robin, not the whole queue. */
  #position(job: AnyJob): number {
    const i = this.#requests.ahead(job.key, job)
    if (i >= 0) return i
    const b = this.#background.indexOf(job)
    return b < 0 ? 0 : this.#requests.length + b
  }

  /** Whether nobody has waited for a queued request call for ABANDONED_MS. */
  #isAbandoned(job: AnyJob, now: number): boolean {
    const since = job.opts.ticket?.abandonedAtMs
    return !job.opts.background && since !== undefined && now - since >= ABANDONED_MS
  }

  /** Drop abandoned calls ABANDONED_MS after a requester left (the queue metric then shows it). */
  #sweepSoon(): void {
    if (this.#sweepTimer !== undefined) return
    this.#sweepTimer = this.#clock.setTimer(() => {
      this.#sweepTimer = undefined
      const now = this.#clock.now()
      for (const job of this.#requests.removeWhere((j) => this.#isAbandoned(j, now))) {
        job.reject(this.#onDropped())
      }
      let left = false
      this.#requests.forEach((j) => (left ||= j.opts.ticket?.abandonedAtMs !== undefined))
      if (left) this.#sweepSoon()
      this.#publish()
    }, ABANDONED_MS)
  }

  #pump(): void {
    this.#startQueued()
    this.#publish()
  }

  #publish(): void {
    this.#onState(this.queued, this.pacePerSecond)
  }

  #startQueued(): void {
    let started = 0
    for (;;) {
      if (this.#inflight >= this.#window) return
      const now = this.#clock.now()
      if (this.#rate !== Infinity) {
        if (
          this.#requests.length === 0 &&
          this.#background.length === 0 &&
          now - this.#lastThrottleMs >= IDLE_RESET_MS
        ) {
          this.#rate = Infinity
        } else if (now < this.#nextStartMs) {
          this.#arm(this.#nextStartMs - now)
          return
        }
      }
      const job = this.#requests.shift() ?? this.#background.shift()
      if (job === undefined) return
      if (this.#isAbandoned(job, now)) {
        job.reject(this.#onDropped())
        continue
      }
      try {
        job.opts.beforeStart?.()
      } catch (err) {
        job.reject(err)
        continue
      }
      if (this.#rate !== Infinity)
        this.#nextStartMs = Math.max(now, this.#nextStartMs) + 1000 / this.#rate
      this.#start(job, now)
      // Starting a call (signing, dispatch) costs a few hundred microseconds: start a round's
      // calls a few at a time, so that cache hits arriving meanwhile are answered in between.
      if (++started >= STARTS_PER_TURN) {
        this.#pumpSoon()
        return
      }
    }
  }

  /**
   * After an answer, start queued calls on the next turn of the event loop, not at once: the
   * answers of one round arrive together, and a round's 429s must be seen before its successes
   * start more calls (else slow start sends a whole window into an empty quota).
   */
  #pumpSoon(): void {
    if (this.#requests.length > 0 || this.#background.length > 0) this.#arm(1)
    this.#publish()
  }

  #arm(ms: number): void {
    if (this.#timer !== undefined) return
    this.#timer = this.#clock.setTimer(() => {
      this.#timer = undefined
      this.#pump()
    }, ms)
  }

  #start(job: AnyJob, now: number): void {
    job.started = true
    job.startedAtMs = now
    this.#inflight++
    let p: Promise<unknown>
    try {
      p = job.run()
    } catch (err) {
      p = Promise.reject(err)
    }
    p.then(
      (v) => {
        this.#inflight--
        this.#onSuccess()
        job.resolve(v)
        this.#pumpSoon()
      },
      (err: unknown) => {
        this.#inflight--
        if (this.#isThrottle(err)) {
          this.#onThrottle(job)
          if (!job.opts.background && ++job.throttledTries < MAX_THROTTLED_TRIES) {
            job.started = false
            this.#requests.unshift(job.key, job)
            this.#pumpSoon()
            job.opts.ticket?.changed()
            return
          }
        } else if (this.#isAccepted(err)) {
          this.#onSuccess()
        }
        job.reject(err)
        this.#pumpSoon()
      },
    )
  }

  #onSuccess(): void {
    const now = this.#clock.now()
    if (this.#rate === Infinity) {
      if (this.#window < this.#maxWindow) this.#window++
      const r = this.#recentSuccesses
      r.push(now)
      // Only the last second matters; keep the list short whatever the call rate.
      if (r.length > 4096 || (r[0] as number) < now - 1000) this.#pruneSuccesses(now)
    } else {
      // Until the first 429 at the new pace, grow fast (one call per success: x2 per second, as
      // TCP's slow start does); after it, by 5 % per second (one cut every few seconds).
      this.#rate += this.#rate < this.#ceiling ? 1 : GROWTH
    }
  }

  #pruneSuccesses(now: number): void {
    const r = this.#recentSuccesses
    let i = 0
    while (i < r.length && (r[i] as number) < now - 1000) i++
    r.splice(0, Math.max(i, r.length - 4096))
  }

  #onThrottle(job: AnyJob): void {
    const now = this.#clock.now()
    this.#lastThrottleMs = now
    if (this.#rate === Infinity) {
      this.#pruneSuccesses(now)
      // What the upstream accepted over the last second is a floor of its quota (a herd's first
      // second sees its burst, not its rate): start there and probe upwards.
      this.#rate = Math.max(MIN_RATE, this.#recentSuccesses.length)
      this.#ceiling = Infinity
      this.#recentSuccesses.length = 0
      this.#window = this.#initialWindow
      this.#nextStartMs = now + 1000 / this.#rate
      this.#lastCutMs = now
      this.#onPacing()
      // Requests waiting for a slot now wait in a paced queue: they look again.
      for (const queue of [this.#requests, this.#background])
        queue.forEach((j) => j.opts.ticket?.changed())
    } else if (job.startedAtMs > this.#lastCutMs) {
      // One cut per round: calls started before the last cut were sent at the old rate.
      this.#rate = Math.max(MIN_RATE, this.#rate * CUT)
      this.#ceiling = this.#rate
      this.#nextStartMs = Math.max(this.#nextStartMs, now + 1000 / this.#rate)
      this.#lastCutMs = now
    }
  }
}
