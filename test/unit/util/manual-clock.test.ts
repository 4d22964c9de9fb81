import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../../src/util/clock.js'

describe('ManualClock', () => {
  it('monotonicMs moves with advance() and set(), never back', () => {
    const c = new ManualClock(1_000)
    const t0 = c.monotonicMs()
    c.advance(250)
    expect(c.monotonicMs() - t0).toBe(250)
    c.set(500) // earlier than now: time does not go back
    expect(c.monotonicMs() - t0).toBe(250)
  })

  it('starts at 2026-01-01T00:00:00Z by default, or where told', () => {
    expect(new ManualClock().now()).toBe(Date.UTC(2026, 0, 1))
    expect(new ManualClock(42).now()).toBe(42)
  })

  it('only moves when told', () => {
    const c = new ManualClock(1000)
    expect(c.now()).toBe(1000)
    expect(c.now()).toBe(1000)
    c.advance(500)
    expect(c.now()).toBe(1500)
    c.set(10_000)
    expect(c.now()).toBe(10_000)
  })

  it('set never goes backwards', () => {
    const c = new ManualClock(1000)
    c.set(500)
    expect(c.now()).toBe(1000)
  })

  it('fires due timers in time order, each at its own instant', () => {
    const c = new ManualClock(0)
    const fired: Array<[string, number]> = []
    c.setTimer(() => fired.push(['b', c.now()]), 200)
    c.setTimer(() => fired.push(['a', c.now()]), 100)
    c.setTimer(() => fired.push(['c', c.now()]), 300)
    expect(c.pendingTimers).toBe(3)
    c.advance(250)
    expect(fired).toEqual([
      ['a', 100],
      ['b', 200],
    ])
    expect(c.now()).toBe(250)
    expect(c.pendingTimers).toBe(1)
    c.advance(50)
    expect(fired).toEqual([
      ['a', 100],
      ['b', 200],
      ['c', 300],
    ])
    expect(c.pendingTimers).toBe(0)
  })

  it('timers due at the same instant fire in the order they were set', () => {
    const c = new ManualClock(0)
    const fired: number[] = []
    for (let i = 0; i < 5; i++) c.setTimer(() => fired.push(i), 100)
    c.advance(100)
    expect(fired).toEqual([0, 1, 2, 3, 4])
  })

  it('a timer due exactly at the target fires; one after it does not', () => {
    const c = new ManualClock(0)
    let a = 0
    let b = 0
    c.setTimer(() => a++, 100)
    c.setTimer(() => b++, 101)
    c.advance(100)
    expect([a, b]).toEqual([1, 0])
  })

  it('cancel removes a timer', () => {
    const c = new ManualClock(0)
    let n = 0
    const t = c.setTimer(() => n++, 10)
    t.cancel()
    expect(c.pendingTimers).toBe(0)
    c.advance(100)
    expect(n).toBe(0)
    t.cancel()
  })

  it('a timer set from a timer fires in the same advance when due', () => {
    const c = new ManualClock(0)
    const at: number[] = []
    c.setTimer(() => {
      at.push(c.now())
      c.setTimer(() => at.push(c.now()), 50)
    }, 100)
    c.advance(1000)
    expect(at).toEqual([100, 150])
    expect(c.now()).toBe(1000)
  })

  it('negative and zero delays are due now', () => {
    const c = new ManualClock(0)
    let n = 0
    c.setTimer(() => n++, -5)
    c.setTimer(() => n++, 0)
    c.advance(0)
    expect(n).toBe(2)
  })

  it('set() fires timers on the way', () => {
    const c = new ManualClock(0)
    const at: number[] = []
    c.setTimer(() => at.push(c.now()), 3_600_000)
    c.set(7_200_000)
    expect(at).toEqual([3_600_000])
  })
})
