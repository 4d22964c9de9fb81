// The two metrics the hot path touches, kept as plain numbers: a hit bumps an array slot and
// adds to a bucket after one compare. prom-client reads them only at scrape time.

import type { Metric, MetricValueWithName } from 'prom-client'

/** Per-status-code response counts: an array index bump on the hot path. */
export class StatusCounter {
  readonly counts = new Float64Array(600)
  inc(status: number): void {
    this.counts[status] = (this.counts[status] ?? 0) + 1
  }
  get(status: number): number {
    return this.counts[status] ?? 0
  }
}

/** Counts by a few fixed names (a label's values): a property bump on the hot path. */
export class NamedCounter<N extends string> {
  readonly counts: Record<N, number>
  constructor(names: readonly N[]) {
    this.counts = Object.fromEntries(names.map((n) => [n, 0])) as Record<N, number>
  }
  inc(name: N): void {
    this.counts[name]++
  }
}

/** What a credential request came to, as the request duration histogram's `outcome` label. */
export const REQUEST_OUTCOMES = ['hit', 'miss', 'error'] as const
export const OUTCOME_HIT = 0
export const OUTCOME_MISS = 1
export const OUTCOME_ERROR = 2

/** Upper bounds (seconds) of the request duration buckets: hits take microseconds, misses an upstream call. */
export const REQUEST_DURATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
] as const

/**
 * Credential request durations by outcome: the hot path adds to plain arrays (a hit's duration
 * falls in the first bucket after one compare); prom-client's text is built at scrape time.
 */
export class RequestDurations {
  readonly #boundsMs = Float64Array.from(REQUEST_DURATION_BUCKETS, (s) => s * 1000)
  /** Per outcome, a count per bucket (non-cumulative) and a last one for +Inf. */
  readonly #counts = new Float64Array(
    REQUEST_OUTCOMES.length * (REQUEST_DURATION_BUCKETS.length + 1),
  )
  readonly #sumsMs = new Float64Array(REQUEST_OUTCOMES.length)

  /** One request of `outcome` (OUTCOME_*) that took `ms` milliseconds. */
  observe(outcome: number, ms: number): void {
    const bounds = this.#boundsMs
    let i = 0
    while (i < bounds.length && ms > (bounds[i] as number)) i++
    const at = outcome * (bounds.length + 1) + i
    this.#counts[at] = (this.#counts[at] as number) + 1
    this.#sumsMs[outcome] = (this.#sumsMs[outcome] as number) + ms
  }

  /** Cumulative bucket counts (the last is +Inf, the total) and the sum in seconds. */
  snapshot(outcome: number): { buckets: number[]; sumSeconds: number } {
    const n = REQUEST_DURATION_BUCKETS.length + 1
    const buckets: number[] = []
    let running = 0
    for (let i = 0; i < n; i++) {
      running += this.#counts[outcome * n + i] as number
      buckets.push(running)
    }
    return { buckets, sumSeconds: (this.#sumsMs[outcome] as number) / 1000 }
  }

  reset(): void {
    this.#counts.fill(0)
    this.#sumsMs.fill(0)
  }
}

/**
 * The request duration histogram as a prom-client metric (registry.registerMetric): prom-client
 * renders what get() returns, as it does for its own histograms. Outcomes with no request yet
 * are left out, as prom-client leaves out label sets never observed.
 */
export function requestDurationMetric(name: string, help: string, d: RequestDurations): Metric {
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get() {
      const values: MetricValueWithName<string>[] = []
      REQUEST_OUTCOMES.forEach((outcome, k) => {
        const { buckets, sumSeconds } = d.snapshot(k)
        const count = buckets[buckets.length - 1] as number
        if (count === 0) return
        buckets.forEach((value, i) => {
          const le = i < REQUEST_DURATION_BUCKETS.length ? REQUEST_DURATION_BUCKETS[i] : '+Inf'
          values.push({
            metricName: `${name}_bucket`,
            labels: { le: le as number, outcome },
            value,
          })
        })
        values.push({ metricName: `${name}_sum`, labels: { outcome }, value: sumSeconds })
        values.push({ metricName: `${name}_count`, labels: { outcome }, value: count })
      })
      return Promise.resolve({ name, help, type: 'histogram', aggregator: 'sum', values })
    },
    reset: () => d.reset(),
  } as unknown as Metric
}
