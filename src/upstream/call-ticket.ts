// Where one upstream call stands while the pods that asked for it wait. Whoever waits for the
// call (the cache) creates the ticket and passes it down with the call; a queue that holds the
// call (the upstream gate, behind any source) keeps it current. A call no queue holds has started.
// holdWhileQueued() turns that into what a pod sees: its answer, or a prompt 503 with Retry-After
// when the call waits in a paced queue for longer than a pod would wait. The ticket also counts
// who still waits, so that a queue can drop a call everybody has given up on.

import { UpstreamQueuedError } from '../errors.js'
import type { Clock, TimerHandle } from '../util/clock.js'

/** What a queue tells a ticket about the call it holds. */
export interface QueuePlace {
  /** Whether the call still waits to start. */
  queued(): boolean
  /**
   * About how long until the call starts, ms: undefined once it has started, and while the queue
   * starts calls as soon as calls in flight end (it is not pacing: no wait to predict).
   */
  etaMs(): number | undefined
  /** Told when the last requester stopped waiting (see CallTicket.abandonedAtMs). */
  abandoned?(): void
}

export class CallTicket {
  #place: QueuePlace | undefined
  readonly #watchers = new Set<() => void>()
  #waiting = 0
  #abandonedAtMs: number | undefined

  /**
   * When the last requester stopped waiting for the call; undefined while one waits, or when
   * nobody ever waited (a background renewal).
   */
  get abandonedAtMs(): number | undefined {
    return this.#abandonedAtMs
  }

  /** A requester waits for the call (a pod's retry counts again). */
  join(): void {
    this.#waiting++
    this.#abandonedAtMs = undefined
  }

  /** A requester stopped waiting: it has its answer, a 503, or it went away. */
  leave(nowMs: number): void {
    if (--this.#waiting > 0) return
    this.#abandonedAtMs = nowMs
    this.#place?.abandoned?.()
  }

  /** See QueuePlace.etaMs; undefined while no queue holds the call. */
  etaMs(): number | undefined {
    return this.#place?.etaMs()
  }

  /** Whether a queue holds the call and it has not started. */
  queued(): boolean {
    return this.#place?.queued() ?? false
  }

  /** A queue took the call; if another queue held it before, waiters look again. */
  place(place: QueuePlace): void {
    const moved = this.#place !== undefined
    this.#place = place
    if (moved) this.changed()
  }

  /** The call's place changed (the queue started pacing, the call went back to the queue). */
  changed(): void {
    for (const watch of [...this.#watchers]) watch()
  }

  /** Call `watch` on every change until the returned function is called. */
  watch(watch: () => void): () => void {
    this.#watchers.add(watch)
    return () => this.#watchers.delete(watch)
  }
}

export interface HoldOptions {
  clock: Clock
  /** How long one requester may wait for a queued call before it is answered 503. */
  holdMs: number
  /** Told each time a requester is refused (for a metric). */
  onRefused?: () => void
}

/**
 * One requester's wait for a call: the call's answer, unless the call waits in a paced queue and
 * will not start within holdMs of now (or has not when holdMs run out), in which case the wait
 * ends with UpstreamQueuedError (503, Retry-After = the expected wait). The call goes on either
 * way; its result is for the requester's retry. While the queue is not pacing, the requester
 * waits as long as the call takes, and looks again should pacing begin.
 */
export function holdWhileQueued<T>(
  call: Promise<T>,
  ticket: CallTicket,
  { clock, holdMs, onRefused }: HoldOptions,
): Promise<T> {
  const deadline = clock.now() + holdMs
  const refusal = (): UpstreamQueuedError | undefined => {
    const eta = ticket.etaMs()
    if (eta === undefined) return undefined
    const now = clock.now()
    if (now < deadline && now + eta <= deadline) return undefined
    onRefused?.()
    return new UpstreamQueuedError(eta)
  }
  ticket.join()
  return new Promise<T>((resolve, reject) => {
    // A look at the deadline, armed only while the call waits in a queue (a call that has
    // started is simply awaited: a herd joining it costs no timers).
    let timer: TimerHandle | undefined
    let waiting = true
    const look = (): void => {
      const err = refusal()
      if (err !== undefined) {
        stop()
        reject(err)
      } else if (timer === undefined && ticket.queued()) {
        timer = clock.setTimer(look, Math.max(0, deadline - clock.now()))
      }
    }
    const stop = (): void => {
      if (!waiting) return
      waiting = false
      timer?.cancel()
      unwatch()
      ticket.leave(clock.now())
    }
    const unwatch = ticket.watch(look)
    look()
    call.then(
      (value) => {
        stop()
        resolve(value)
      },
      (err: unknown) => {
        stop()
        reject(err)
      },
    )
  })
}
