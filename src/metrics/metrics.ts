// All metric names live here. One registry is passed in (no global state). The hot path only bumps
// plain numbers; prom-client sees them at scrape time through collect(). Gauges are set by the
// part that owns the value (the cache its size, the upstream gate its queue).

import { Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'
import type { Metric, MetricValueWithName, Registry } from 'prom-client'

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

export interface AgentMetrics {
  httpResponses: StatusCounter
  requestDurations: RequestDurations
  cacheState: Counter<'state'>
  cacheErrors: Counter<'type' | 'code'>
  cacheEntries: Gauge
  upstreamRequests: Counter<'api' | 'outcome'>
  upstreamDuration: Histogram<'api' | 'outcome'>
  upstreamQueueLength: Gauge
  upstreamPace: Gauge
  singleFlightWaits: Counter
  refreshSkipped: Counter<'reason'>
  queueRejections: Counter
}

export interface CreateMetricsOptions {
  registry: Registry
  version: string
  /** Log lines dropped because output fell behind, read at scrape time. */
  logLinesDropped?: () => number
  /** Register Node's default process metrics (CPU, memory, event loop lag, GC). Default true. */
  processMetrics?: boolean
}

export function createMetrics(opts: CreateMetricsOptions): AgentMetrics {
  const { registry } = opts
  const httpResponses = new StatusCounter()

  new Counter({
    name: 'pod_identity_http_response',
    help: 'HTTP responses of the credential endpoint, by status code',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset()
      const counts = httpResponses.counts
      for (let code = 100; code < counts.length; code++) {
        const n = counts[code] ?? 0
        if (n > 0) this.inc({ code: String(code) }, n)
      }
    },
  })

  const requestDurations = new RequestDurations()
  registry.registerMetric(requestDurationMetric(requestDurations))

  // The reference agent's name and meaning, so its dashboards keep working: "hit" counts
  // successful background renewals, not cache hits (a hit is counted by nothing on the hot path;
  // see pod_identity_request_duration_seconds{outcome="hit"}).
  const cacheState = new Counter({
    name: 'pod_identity_cache_state',
    help: 'Cache events: miss (upstream fetch on the request path), hit (successful background renewal), evicted',
    labelNames: ['state'],
    registers: [registry],
  })
  const cacheErrors = new Counter({
    name: 'pod_identity_cache_errors',
    help: 'Failed background renewals, by type (Recoverable, NonRecoverable) and upstream error code',
    labelNames: ['type', 'code'],
    registers: [registry],
  })
  const upstreamRequests = new Counter({
    name: 'pod_identity_upstream_requests_total',
    help: 'Upstream credential calls (each HTTP attempt), by API and outcome (success or error code)',
    labelNames: ['api', 'outcome'],
    registers: [registry],
  })
  const upstreamDuration = new Histogram({
    name: 'pod_identity_upstream_request_duration_seconds',
    help: 'Duration of upstream credential calls (each HTTP attempt), by API and outcome',
    labelNames: ['api', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  })
  const singleFlightWaits = new Counter({
    name: 'pod_identity_cache_singleflight_waits_total',
    help: 'Requests that joined an upstream call already in flight for the same token',
    registers: [registry],
  })
  const refreshSkipped = new Counter({
    name: 'pod_identity_cache_refresh_deferred_total',
    help: 'Background renewals deferred, by reason (rate_limited)',
    labelNames: ['reason'],
    registers: [registry],
  })
  const queueRejections = new Counter({
    name: 'pod_identity_upstream_queue_rejections_total',
    help: 'Requests answered 503 UpstreamThrottled because their upstream call was still queued',
    registers: [registry],
  })
  const upstreamQueueLength = new Gauge({
    name: 'pod_identity_upstream_queue_length',
    help: 'Upstream calls waiting in the queue (EKS Auth throttling or too many in flight)',
    registers: [registry],
  })
  const upstreamPace = new Gauge({
    name: 'pod_identity_upstream_pace_per_second',
    help: 'Upstream calls per second allowed after EKS Auth throttled this node; 0 when not pacing',
    registers: [registry],
  })
  const cacheEntries = new Gauge({
    name: 'pod_identity_cache_entries',
    help: 'Credential sets currently cached',
    registers: [registry],
  })
  new Counter({
    name: 'pod_identity_log_lines_dropped_total',
    help: 'Log lines dropped because log output fell too far behind (over 16 MiB queued)',
    registers: [registry],
    collect() {
      this.reset()
      this.inc(opts.logLinesDropped?.() ?? 0)
    },
  })
  new Gauge({
    name: 'pod_identity_build_info',
    help: 'Build information; always 1',
    labelNames: ['version'],
    registers: [registry],
  }).set({ version: opts.version }, 1)

  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry })

  return {
    httpResponses,
    requestDurations,
    cacheState,
    cacheErrors,
    cacheEntries,
    upstreamRequests,
    upstreamDuration,
    upstreamQueueLength,
    upstreamPace,
    singleFlightWaits,
    refreshSkipped,
    queueRejections,
  }
}

/**
 * The request duration histogram as a prom-client metric (registry.registerMetric): prom-client
 * renders what get() returns, as it does for its own histograms. Outcomes with no request yet
 * are left out, as prom-client leaves out label sets never observed.
 */
function requestDurationMetric(d: RequestDurations): Metric {
  const name = 'pod_identity_request_duration_seconds'
  const help =
    'Duration of credential requests, from the handler to the answer written, by outcome (hit, miss, error)'
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
