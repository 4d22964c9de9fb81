// The faults a mock upstream can be told to inject, and their validation (from options, flags or
// the admin endpoint).

/** Injected failures. */
export interface Faults {
  /** Delay before every answer, ms. */
  latencyMs: number
  /** Token bucket rate = burst; excess gets the upstream's throttling answer. 0 = off. */
  throttleQps: number
  /** Probability (0..1) of answering with `errorStatus` instead of doing the work. */
  errorRate: number
  /** 500 or 503, as the upstream's internal or unavailable error. */
  errorStatus: 500 | 503
  /** Destroy sockets of incoming API requests without answering (admin endpoints still work). */
  down: boolean
}

export const DEFAULT_FAULTS: Readonly<Faults> = {
  latencyMs: 0,
  throttleQps: 0,
  errorRate: 0,
  errorStatus: 503,
  down: false,
}

/**
 * Validate a partial Faults object (from options or the admin endpoint).
 * @throws TypeError naming the field and what is allowed.
 */
export function validateFaults(input: unknown): Partial<Faults> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TypeError('faults must be a JSON object')
  }
  const out: Partial<Faults> = {}
  for (const [key, v] of Object.entries(input as Record<string, unknown>)) {
    const num = typeof v === 'number' && Number.isFinite(v) ? v : undefined
    switch (key) {
      case 'latencyMs':
      case 'throttleQps':
        if (num === undefined || num < 0) throw new TypeError(`${key} must be a number >= 0`)
        out[key] = num
        break
      case 'errorRate':
        if (num === undefined || num < 0 || num > 1) {
          throw new TypeError('errorRate must be a number from 0 to 1')
        }
        out.errorRate = num
        break
      case 'errorStatus':
        if (v !== 500 && v !== 503) throw new TypeError('errorStatus must be 500 or 503')
        out.errorStatus = v
        break
      case 'down':
        if (typeof v !== 'boolean') throw new TypeError('down must be true or false')
        out.down = v
        break
      default:
        throw new TypeError(
          `unknown fault "${key}"; allowed: latencyMs, throttleQps, errorRate, errorStatus, down`,
        )
    }
  }
  return out
}
