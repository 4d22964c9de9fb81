// A pino destination that keeps every line in memory, for assertions that no log line leaks a
// token or a secret.

import type { DestinationStream } from 'pino'

export interface LogLines extends DestinationStream {
  readonly lines: string[]
  /** Lines containing any of the given strings. */
  leaking(secrets: Iterable<string>): string[]
}

export function logLines(): LogLines {
  const lines: string[] = []
  return {
    lines,
    write(s: string) {
      for (const l of s.split('\n')) if (l !== '') lines.push(l)
    },
    leaking(secrets) {
      const list = [...secrets]
      return lines.filter((l) => list.some((s) => s !== '' && l.includes(s)))
    },
  }
}
