import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../../src/util/clock.js'
import { TokenBucket } from '../../../src/util/token-bucket.js'

function takeAll(b: TokenBucket): number {
  let n = 0
  while (b.tryTake()) n++
  return n
}

describe('TokenBucket', () => {
  it('starts full: burst tokens at once, then none', () => {
    const clock = new ManualClock()
    const b = new TokenBucket({ clock, ratePerSecond: 3, burst: 3 })
    expect(takeAll(b)).toBe(3)
    expect(b.tryTake()).toBe(false)
  })

  it('refills at the rate on the injected clock', () => {
    const clock = new ManualClock()
    const b = new TokenBucket({ clock, ratePerSecond: 2, burst: 2 })
    takeAll(b)
    clock.advance(499)
    expect(b.tryTake()).toBe(false)
    clock.advance(1)
    expect(b.tryTake()).toBe(true)
    expect(b.tryTake()).toBe(false)
  })

  it('never holds more than burst', () => {
    const clock = new ManualClock()
    const b = new TokenBucket({ clock, ratePerSecond: 10, burst: 4 })
    takeAll(b)
    clock.advance(3_600_000)
    expect(takeAll(b)).toBe(4)
  })

  it('msUntilToken is 0 when a token is there, else the wait for one', () => {
    const clock = new ManualClock()
    const b = new TokenBucket({ clock, ratePerSecond: 1, burst: 1 })
    expect(b.msUntilToken()).toBe(0)
    expect(b.tryTake()).toBe(true)
    expect(b.msUntilToken()).toBe(1000)
    clock.advance(250)
    expect(b.msUntilToken()).toBe(750)
    clock.advance(750)
    expect(b.msUntilToken()).toBe(0)
    expect(b.tryTake()).toBe(true)
  })

  it('fractional rates work (one token every 2 s)', () => {
    const clock = new ManualClock()
    const b = new TokenBucket({ clock, ratePerSecond: 0.5, burst: 1 })
    expect(b.tryTake()).toBe(true)
    expect(b.msUntilToken()).toBe(2000)
    clock.advance(1999)
    expect(b.tryTake()).toBe(false)
    clock.advance(1)
    expect(b.tryTake()).toBe(true)
  })

  it('a steady rate over a long run', () => {
    const clock = new ManualClock()
    const b = new TokenBucket({ clock, ratePerSecond: 3, burst: 3 })
    let taken = 0
    for (let i = 0; i < 10_000; i++) {
      if (b.tryTake()) taken++
      clock.advance(10)
    }
    // 100 s at 3/s plus the initial burst
    expect(taken).toBeGreaterThanOrEqual(300)
    expect(taken).toBeLessThanOrEqual(303)
  })

  it.each([
    [0, 1],
    [-1, 1],
    [Number.NaN, 1],
    [1, 0],
    [1, 0.5],
    [1, Number.NaN],
  ])('refuses rate %d burst %d', (ratePerSecond, burst) => {
    expect(() => new TokenBucket({ clock: new ManualClock(), ratePerSecond, burst })).toThrow(
      TypeError,
    )
  })
})
