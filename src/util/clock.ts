// The one source of time for the cache, the server and the upstream clients, so tests can drive
// hours of credential lifetime in milliseconds. Nothing else in src/ reads the wall clock.

import { performance } from 'node:perf_hooks'

export interface TimerHandle {
  cancel(): void
}

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
  /** Milliseconds from an arbitrary start that never go back (durations: a wall clock can jump). */
  monotonicMs(): number
  /** Run `fn` after `ms` milliseconds of this clock's time. Timers never keep the process alive. */
  setTimer(fn: () => void, ms: number): TimerHandle
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonicMs: () => performance.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms)
    t.unref()
    return { cancel: () => clearTimeout(t) }
  },
}

/** Resolves after `ms` milliseconds of this clock's time. */
export function sleepOn(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(resolve, ms))
}

/** A clock that only moves when told to; timers fire in order as time is advanced. */
export class ManualClock implements Clock {
  #now: number
  #seq = 0
  readonly #timers = new Map<number, { at: number; fn: () => void }>()

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.#now = startMs
  }

  now(): number {
    return this.#now
  }

  /** This clock's time: durations are what advance() adds. */
  monotonicMs(): number {
    return this.#now
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const id = ++this.#seq
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn })
    return { cancel: () => this.#timers.delete(id) }
  }

  /** Number of timers still pending. */
  get pendingTimers(): number {
    return this.#timers.size
  }

  /** Move time forward by `ms`, firing due timers in time order (each at its own instant). */
  advance(ms: number): void {
    const target = this.#now + ms
    for (;;) {
      let nextId = -1
      let nextAt = Infinity
      for (const [id, t] of this.#timers) {
        if (t.at <= target && t.at < nextAt) {
          nextAt = t.at
          nextId = id
        }
      }
      if (nextId === -1) break
      const timer = this.#timers.get(nextId)
      this.#timers.delete(nextId)
      this.#now = Math.max(this.#now, nextAt)
      timer?.fn()
    }
    this.#now = target
  }

  /** Jump to an absolute time (never backwards), firing due timers. */
  set(ms: number): void {
    this.advance(Math.max(0, ms - this.#now))
  }
}
