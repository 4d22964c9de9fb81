import { describe, expect, it } from 'vitest'
import { formatDurationMs, parseDurationMs } from '../../../src/config/duration.js'

describe('parseDurationMs', () => {
  it.each([
    ['3h', 10_800_000],
    ['90m', 5_400_000],
    ['1h30m', 5_400_000],
    ['500ms', 500],
    ['1.5h', 5_400_000],
    ['.5h', 1_800_000],
    ['0', 0],
    ['0s', 0],
    ['45s', 45_000],
    ['2m30s', 150_000],
    ['1h0m0s', 3_600_000],
    ['1000us', 1],
    ['1000000ns', 1],
    ['1000µs', 1],
    [' 3h ', 10_800_000],
  ])('%j -> %d ms', (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms)
  })

  it.each(['3', 'h', '-1h', '3x', '', ' ', '1h 30m', '3H', 'h3', '1.2.3h', 'ms', '1d', '+-1h'])(
    '%j is not a duration',
    (text) => {
      expect(parseDurationMs(text)).toBeUndefined()
    },
  )

  it('does not keep state between calls', () => {
    expect(parseDurationMs('3x')).toBeUndefined()
    expect(parseDurationMs('3h')).toBe(10_800_000)
    expect(parseDurationMs('3h')).toBe(10_800_000)
  })
})

describe('formatDurationMs', () => {
  it.each([
    [0, '0s'],
    [10_800_000, '3h'],
    [5_400_000, '90m'],
    [45_000, '45s'],
    [1500, '1500ms'],
  ])('%d -> %j', (ms, text) => {
    expect(formatDurationMs(ms)).toBe(text)
    expect(parseDurationMs(text)).toBe(ms)
  })
})
