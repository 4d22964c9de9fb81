import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../../src/util/clock.js'
import type { HeapControls } from '../../../src/util/v8-memory.js'
import { IdleHeapTrimmer, exposeGc } from '../../../src/util/v8-memory.js'

const MiB = 1024 * 1024

/** Heap controls whose busy fraction and young-generation size the test sets. */
function fakeHeap(youngBytes: number, shrinksTo = 1 * MiB) {
  const state = { busy: 0, youngBytes, collections: 0, releases: 0, shrinks: true }
  const heap: HeapControls = {
    busyFraction: () => state.busy,
    youngGenerationBytes: () => state.youngBytes,
    collectYoung: () => {
      state.collections++
      if (state.shrinks) state.youngBytes = shrinksTo
    },
    releaseFreedPages: () => {
      state.releases++
    },
  }
  return { state, heap }
}

describe('IdleHeapTrimmer', () => {
  it('scavenges once the loop is idle and the young generation is large, then not again', () => {
    const clock = new ManualClock()
    const { state, heap } = fakeHeap(32 * MiB)
    const seen: unknown[] = []
    const t = new IdleHeapTrimmer({ clock, heap, intervalMs: 5000, onCollect: (i) => seen.push(i) })
    state.busy = 0.4 // a burst
    t.start()
    clock.advance(5000)
    expect(state.collections).toBe(0)
    state.busy = 0.002 // idle
    clock.advance(5000)
    expect(state.collections).toBe(1)
    // The scavenge shrank it, so the freed pages were handed back too.
    expect(state.releases).toBe(1)
    expect(seen).toEqual([{ youngBytesBefore: 32 * MiB, youngBytesAfter: 1 * MiB, released: true }])
    clock.advance(60_000) // still idle, already small: nothing more to do
    expect(state.collections).toBe(1)
    expect(state.releases).toBe(1)
    expect(t.collections).toBe(1)
    t.stop()
    expect(clock.pendingTimers).toBe(0)
  })

  it('leaves a small young generation alone, however idle', () => {
    const clock = new ManualClock()
    const { state, heap } = fakeHeap(4 * MiB)
    const t = new IdleHeapTrimmer({ clock, heap, intervalMs: 1000 })
    t.start()
    clock.advance(30_000)
    expect(state.collections).toBe(0)
    t.stop()
  })

  it('never runs while the loop is busy (the hot path never pays)', () => {
    const clock = new ManualClock()
    const { state, heap } = fakeHeap(32 * MiB)
    state.busy = 0.011
    const t = new IdleHeapTrimmer({ clock, heap, intervalMs: 1000, maxBusyFraction: 0.01 })
    t.start()
    clock.advance(60_000)
    expect(state.collections).toBe(0)
    expect(state.releases).toBe(0)
    t.stop()
  })

  it('backs off after four scavenges that did not shrink, until the loop was busy again', () => {
    const clock = new ManualClock()
    const { state, heap } = fakeHeap(32 * MiB)
    state.shrinks = false
    const t = new IdleHeapTrimmer({ clock, heap, intervalMs: 1000 })
    t.start()
    clock.advance(10_000)
    expect(state.collections).toBe(4)
    expect(state.releases).toBe(0) // nothing freed: no full GC
    state.busy = 0.5
    clock.advance(1000)
    state.busy = 0
    clock.advance(1000)
    expect(state.collections).toBe(5)
    t.stop()
  })

  it('rejects a non-positive interval', () => {
    const { heap } = fakeHeap(0)
    expect(() => new IdleHeapTrimmer({ clock: new ManualClock(), heap, intervalMs: 0 })).toThrow(
      /intervalMs/,
    )
  })
})

describe('exposeGc', () => {
  it('returns a working gc() without --expose-gc, once, and leaves no global gc behind', () => {
    const gc = exposeGc()
    expect(typeof gc).toBe('function')
    gc?.({ type: 'minor' })
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined()
    expect(exposeGc()).toBe(gc) // made once per process
  })
})
