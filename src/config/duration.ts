// Go-style durations ("3h", "90m", "1h30m", "500ms", "0"), as the reference agent's flags take them.

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
}

const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y

/**
 * Parse a Go duration string into milliseconds. Returns undefined when the text is not a valid
 * non-negative duration (a bare number is accepted only for "0", as in Go).
 */
export function parseDurationMs(text: string): number | undefined {
  const s = text.trim()
  if (s === '0') return 0
  if (s === '') return undefined
  let total = 0
  PART.lastIndex = 0
  while (PART.lastIndex < s.length) {
    const m = PART.exec(s)
    if (m === null) return undefined
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number)
  }
  return Number.isFinite(total) ? total : undefined
}

/** Human form of a millisecond duration, for help texts and messages. */
export function formatDurationMs(ms: number): string {
  if (ms === 0) return '0s'
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms % 1000 === 0) return `${ms / 1000}s`
  return `${ms}ms`
}
