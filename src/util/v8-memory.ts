// Two ways the agent keeps V8 from holding memory it no longer uses.
//
// 1. IdleHeapTrimmer gives back what a burst leaves in V8's young generation once the agent
// is idle again. A burst of misses (a node's pods starting, an agent warming thousands of
// entries) grows the young generation to its largest: two 16 MiB semi-spaces, about 30 MiB of
// RSS. V8 shrinks it only during a GC that follows a quiet spell (allocation below about 1 KB/ms
// over its last 5 s), and an idle agent runs no GC at all: the memory stays resident until V8's
// memory reducer gets to it, 60-110 s later on Node 20. The trimmer looks every 5 s; when the
// event loop was nearly idle over the last period and the young generation is larger than it
// needs to be, it runs one scavenge (a few ms on an idle heap, while nothing waits). V8 decides
// at each GC from the allocation it saw between the earlier GCs of its last 5 s, so the first
// scavenge may only close the burst's account and the next one, 5 s later, shrinks: the memory
// comes back 5-15 s after a burst (bench/README). When a scavenge has shrunk it, the trimmer
// also runs one memory-reducing full GC (releaseFreedPages): Node 24's V8 keeps the pages a
// scavenge frees, and the RSS with them, until such a GC, so without it the shrink gave back
// 8 MiB of 128 there. It costs 23-28 ms once per burst, at idle. Under load the loop is busy and
// nothing runs, so the hot path never pays for it.
//
// 2. compileWasmWithLiftoffOnly() and compileWithoutMaglev(): see there.

import { performance } from 'node:perf_hooks'
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { Clock, TimerHandle } from './clock.js'

const MiB = 1024 * 1024
/** Scavenges in a row that may leave the young generation as large before backing off. */
const MAX_FRUITLESS = 4

/** What the trimmer reads and does; the defaults come from `processHeap()`. */
export interface HeapControls {
  /** Fraction (0-1) of the time since the previous call that the event loop was busy. */
  busyFraction(): number
  /** Bytes the young generation currently holds committed. */
  youngGenerationBytes(): number
  /** Run one young-generation GC (scavenge). */
  collectYoung(): void
  /**
   * Run a memory-reducing full GC that hands V8's freed pages back to the system (Node 24's V8
   * keeps them, and the RSS, until its memory reducer runs).
   */
  releaseFreedPages(): void
}

export interface IdleHeapTrimmerOptions {
  clock: Clock
  heap: HeapControls
  /** How often to look, ms. Default 5000 (V8 judges its allocation rate over 5 s). */
  intervalMs?: number
  /** The loop counts as idle below this busy fraction. Default 0.01 (50 ms in 5 s). */
  maxBusyFraction?: number
  /** Only act when the young generation holds more than this, bytes. Default 8 MiB. */
  minYoungBytes?: number
  /** Told after each scavenge it ran (for a debug log line). */
  onCollect?: (info: {
    youngBytesBefore: number
    youngBytesAfter: number
    /** Whether the scavenge shrank the young generation, so releaseFreedPages() ran too. */
    released: boolean
  }) => void
}

export class IdleHeapTrimmer {
  readonly #clock: Clock
  readonly #heap: HeapControls
  readonly #intervalMs: number
  readonly #maxBusy: number
  readonly #minYoungBytes: number
  readonly #onCollect: IdleHeapTrimmerOptions['onCollect']
  #timer: TimerHandle | undefined
  #collections = 0
  #fruitless = 0

  constructor(opts: IdleHeapTrimmerOptions) {
    this.#clock = opts.clock
    this.#heap = opts.heap
    this.#intervalMs = opts.intervalMs ?? 5000
    this.#maxBusy = opts.maxBusyFraction ?? 0.01
    this.#minYoungBytes = opts.minYoungBytes ?? 8 * MiB
    this.#onCollect = opts.onCollect
    if (!(this.#intervalMs > 0)) throw new TypeError('IdleHeapTrimmer needs intervalMs > 0')
  }

  /** Scavenges run so far. */
  get collections(): number {
    return this.#collections
  }

  /** Look every intervalMs until stop(). The timer never keeps the process alive. */
  start(): void {
    if (this.#timer !== undefined) return
    this.#heap.busyFraction() // start the first period now
    const tick = (): void => {
      this.check()
      this.#timer = this.#clock.setTimer(tick, this.#intervalMs)
    }
    this.#timer = this.#clock.setTimer(tick, this.#intervalMs)
  }

  stop(): void {
    this.#timer?.cancel()
    this.#timer = undefined
  }

  /**
   * One look: scavenge if the last period was idle and the young generation is large; when that
   * shrank it, release the freed pages too. After MAX_FRUITLESS (4) scavenges in a row that did
   * not shrink it (V8 judged allocation too high), it waits for the loop to have been busy before
   * trying again.
   */
  check(): boolean {
    const busy = this.#heap.busyFraction()
    if (!(busy < this.#maxBusy)) {
      this.#fruitless = 0
      return false
    }
    if (this.#fruitless >= MAX_FRUITLESS) return false
    const before = this.#heap.youngGenerationBytes()
    if (!(before > this.#minYoungBytes)) return false
    this.#heap.collectYoung()
    this.#collections++
    const after = this.#heap.youngGenerationBytes()
    const shrank = after < before
    this.#fruitless = shrank ? 0 : this.#fruitless + 1
    if (shrank) this.#heap.releaseFreedPages()
    this.#onCollect?.({ youngBytesBefore: before, youngBytesAfter: after, released: shrank })
    return true
  }
}

type GcFunction = (options?: {
  type?: 'minor' | 'major'
  flavor?: 'regular' | 'last-resort'
}) => void

/** The gc() exposeGc() made, kept: each one holds a context (about 130 KB of heap). */
let exposed: GcFunction | undefined

/**
 * V8's gc() without starting node with --expose-gc: the flag is turned on just long enough to
 * create one context that has it (what jest's leak detector does), then off again. Made once per
 * process. Undefined if this V8 does not allow it.
 */
export function exposeGc(): GcFunction | undefined {
  const existing = (globalThis as { gc?: unknown }).gc
  if (typeof existing === 'function') return existing as GcFunction
  if (exposed !== undefined) return exposed
  try {
    setFlagsFromString('--expose-gc')
    const gc: unknown = runInNewContext('gc')
    if (typeof gc === 'function') exposed = gc as GcFunction
    return exposed
  } catch {
    return undefined
  } finally {
    setFlagsFromString('--no-expose-gc')
  }
}

/** The real process's controls, or undefined if gc() is not available. */
export function processHeap(): HeapControls | undefined {
  const gc = exposeGc()
  if (gc === undefined) return undefined
  let last = performance.eventLoopUtilization()
  return {
    busyFraction() {
      const now = performance.eventLoopUtilization()
      const delta = performance.eventLoopUtilization(now, last)
      last = now
      return delta.utilization
    },
    youngGenerationBytes() {
      const s = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space')
      return s?.space_size ?? 0
    },
    collectYoung() {
      gc({ type: 'minor' })
    },
    releaseFreedPages() {
      // What V8 runs when the embedder reports memory pressure: full GCs that compact and
      // reduce memory, then return pooled pages. 23-28 ms on an idle agent with 2000 entries
      // on Node 24, where it gave back 30 MiB; under a millisecond and no change on Node 20.
      gc({ type: 'major', flavor: 'last-resort' })
    },
  }
}

/**
 * undici parses HTTP/1 with llhttp compiled to WebAssembly. By default V8 compiles it with its
 * baseline compiler (Liftoff) and then recompiles the hot functions with TurboFan on background
 * threads, whose freed compiler memory stays in those threads' malloc arenas: about 5 MiB of the
 * agent's RSS for the life of the process (10 MiB in a bare script; bench/README). The agent
 * parses a few hundred bytes per upstream answer, where Liftoff's code is fast enough.
 * Process-wide; call it before the first upstream connection (llhttp is compiled then).
 */
export function compileWasmWithLiftoffOnly(): void {
  setFlagsFromString('--liftoff-only')
}

/**
 * Maglev, V8's mid-tier JIT (on by default from Node 22; Node 20's V8 has it off), compiles on
 * V8's worker threads into zone memory taken from malloc. A burst of misses (the miss path's
 * functions getting hot) scatters those zones over glibc's heap, and the small blocks that
 * outlive them keep the heap from shrinking: on Node 24.11, an agent warmed with 2000 tokens
 * kept a 16 MiB brk heap against 6-8 MiB without Maglev, and its RSS once idle was 88 MiB against
 * 77-79 (bench/README). A hit runs TurboFan code either way (instructions per hit within 1 %);
 * the miss path runs its baseline code a little longer before TurboFan takes it (about 7 % on a
 * fresh agent's first herds). Process-wide, from when it is set: call it before the agent's
 * modules load. A no-op where V8 has Maglev off.
 */
export function compileWithoutMaglev(): void {
  setFlagsFromString('--no-maglev')
}
