// All metric names live here. One registry is passed in (no global state). The hot path only bumps
// plain numbers (hot-path-metrics.ts); prom-client sees them at scrape time through collect().
// Gauges are set by the part that owns the value (the cache its size, the upstream gate its queue).

import { Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client'
import type { Registry } from 'prom-client'
import type { ReuseReason } from '../cache/key-map.js'
import { REUSE_REASONS } from '../cache/key-map.js'
import {
  NamedCounter,
  RequestDurations,
  StatusCounter,
  requestDurationMetric,
} from './hot-path-metrics.js'

export interface AgentMetrics {
  httpResponses: StatusCounter
  requestDurations: RequestDurations
  cacheState: Counter<'state'>
  cacheErrors: Counter<'type' | 'code'>
  cacheEntries: Gauge
  cacheTokens: Gauge
  cacheTokensMax: Gauge
  ready: Gauge
  upstreamRequests: Counter<'api' | 'outcome'>
  upstreamDuration: Histogram<'api' | 'outcome'>
  upstreamQueueLength: Gauge<'api'>
  upstreamPace: Gauge<'api'>
  singleFlightWaits: Counter
  refreshSkipped: Counter<'reason'>
  queueRejections: Counter
  refusalsReplayed: Counter
  upstreamCallsDropped: Counter
  requestsLimited: Counter<'reason'>
  upstreamFallbacks: Counter<'reason'>
  upstreamBreakerOpen: Gauge
  associationsEntries: Gauge
  associationsLoaded: Gauge
  associationsReloadFailures: Counter
  localValidation: Counter<'result'>
  upstreamCallsSaved: Counter<'reason'>
  reusedAnswers: NamedCounter<ReuseReason>
}

/**
 * Why a limit refused a request (pod_identity_requests_limited_total{reason}): the source's rate
 * of requests needing new credentials, its open connections, its queued upstream calls, or the
 * agent's request rate.
 */
export const LIMIT_REASONS = ['miss_rate', 'connections', 'queue', 'request_rate'] as const
export type LimitReason = (typeof LIMIT_REASONS)[number]

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
  const registers = [registry]
  const counter = <L extends string = never>(name: string, help: string, labelNames: L[] = []) =>
    new Counter<L>({ name, help, labelNames, registers })
  const gauge = <L extends string = never>(name: string, help: string, labelNames: L[] = []) =>
    new Gauge<L>({ name, help, labelNames, registers })

  const httpResponses = new StatusCounter()

  new Counter({
    name: 'pod_identity_http_response',
    help: 'HTTP responses of the credential endpoint, by status code',
    labelNames: ['code'],
    registers,
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
  registry.registerMetric(
    requestDurationMetric(
      'pod_identity_request_duration_seconds',
      'Duration of credential requests, from the handler to the answer written, by outcome (hit, miss, error)',
      requestDurations,
    ),
  )

  // The reference agent's name and meaning, so its dashboards keep working: "hit" counts
  // successful background renewals, not cache hits (a hit is counted by nothing on the hot path;
  // see pod_identity_request_duration_seconds{outcome="hit"}).
  const cacheState = counter(
    'pod_identity_cache_state',
    'Cache events: miss (upstream fetch on the request path), hit (successful background renewal), evicted',
    ['state'],
  )
  const cacheErrors = counter(
    'pod_identity_cache_errors',
    'Failed background renewals, by type (Recoverable, NonRecoverable) and upstream error code',
    ['type', 'code'],
  )
  const upstreamRequests = counter(
    'pod_identity_upstream_requests_total',
    'Upstream credential calls (each HTTP attempt), by API and outcome (success or error code)',
    ['api', 'outcome'],
  )
  const upstreamDuration = new Histogram({
    name: 'pod_identity_upstream_request_duration_seconds',
    help: 'Duration of upstream credential calls (each HTTP attempt), by API and outcome',
    labelNames: ['api', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  })
  const singleFlightWaits = counter(
    'pod_identity_cache_singleflight_waits_total',
    'Requests that joined an upstream call already in flight for the same token',
  )
  const refreshSkipped = counter(
    'pod_identity_cache_refresh_deferred_total',
    'Background renewals deferred, by reason (rate_limited)',
    ['reason'],
  )
  const queueRejections = counter(
    'pod_identity_upstream_queue_rejections_total',
    'Requests answered 503 UpstreamThrottled because their upstream call was still queued',
  )
  const refusalsReplayed = counter(
    'pod_identity_cache_refusals_replayed_total',
    "Requests answered with an upstream's final refusal of the same token, remembered for --negative-cache-ttl, without a call",
  )
  const requestsLimited = counter(
    'pod_identity_requests_limited_total',
    'Requests or connections refused by a limit before any upstream call, by reason (miss_rate, connections, queue, request_rate)',
    ['reason'],
  )
  const upstreamCallsDropped = counter(
    'pod_identity_upstream_calls_dropped_total',
    'Queued upstream calls dropped unmade because every request that wanted them had given up',
  )
  const upstreamQueueLength = gauge(
    'pod_identity_upstream_queue_length',
    'Upstream calls waiting in the queue (the upstream throttling or too many in flight), by API',
    ['api'],
  )
  const upstreamPace = gauge(
    'pod_identity_upstream_pace_per_second',
    'Upstream calls per second allowed after the upstream throttled this node, by API; 0 when not pacing',
    ['api'],
  )
  const upstreamFallbacks = counter(
    'pod_identity_upstream_fallbacks_total',
    'Calls sent to STS instead of EKS Auth (eks-auth-then-sts), by reason',
    ['reason'],
  )
  const upstreamBreakerOpen = gauge(
    'pod_identity_upstream_breaker_open',
    '1 while EKS Auth keeps failing and new calls go straight to STS (eks-auth-then-sts), else 0',
  )
  const associationsEntries = gauge(
    'pod_identity_associations_entries',
    'Entries of the associations file as last loaded',
  )
  const associationsLoaded = gauge(
    'pod_identity_associations_loaded_timestamp_seconds',
    'When the associations file was last loaded (a change took effect), Unix seconds',
  )
  const associationsReloadFailures = counter(
    'pod_identity_associations_reload_failures_total',
    'Changed associations files refused (unreadable or invalid); the previous one stays',
  )
  const cacheEntries = gauge('pod_identity_cache_entries', 'Credential sets currently cached')
  const cacheTokens = gauge(
    'pod_identity_cache_tokens',
    'Tokens the cache holds (each bound to a credential set); at most pod_identity_cache_tokens_max',
  )
  const cacheTokensMax = gauge(
    'pod_identity_cache_tokens_max',
    'The most tokens the cache holds (--max-cache-size); the least recently used go first',
  )
  const ready = gauge(
    'pod_identity_ready',
    'Whether the last readiness check (/readyz) found every credential listener answering: 1 or 0',
  )
  const localValidation = counter(
    'pod_identity_local_validation_total',
    'Tokens verified on the node (--token-jwks), by result: accepted, a refusal (bad_signature, unknown_key, wrong_issuer, wrong_audience, not_pod_bound, invalid_claims), or keys_unavailable (served unverified, per token)',
    ['result'],
  )
  const upstreamCallsSaved = counter(
    'pod_identity_upstream_calls_saved_total',
    "New tokens answered without an upstream call of their own, from their pod's entry after token rotation (rotation) or from another pod's entry of the association (shared)",
    ['reason'],
  )
  const reusedAnswers = new NamedCounter<ReuseReason>(REUSE_REASONS)
  new Counter({
    name: 'pod_identity_cache_reused_answers_total',
    help: 'Answers from credentials another token fetched: after token rotation (rotation) or from another pod of the association (shared); hits included',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset()
      for (const reason of REUSE_REASONS) {
        this.inc({ reason }, reusedAnswers.counts[reason])
      }
    },
  })
  new Counter({
    name: 'pod_identity_log_lines_dropped_total',
    help: 'Log lines dropped because log output fell too far behind (over 16 MiB queued)',
    registers,
    collect() {
      this.reset()
      this.inc(opts.logLinesDropped?.() ?? 0)
    },
  })
  new Gauge({
    name: 'pod_identity_build_info',
    help: 'Build information; always 1',
    labelNames: ['version'],
    registers,
  }).set({ version: opts.version }, 1)

  if (opts.processMetrics !== false) collectDefaultMetrics({ register: registry })

  return {
    httpResponses,
    requestDurations,
    cacheState,
    cacheErrors,
    cacheEntries,
    cacheTokens,
    cacheTokensMax,
    ready,
    upstreamRequests,
    upstreamDuration,
    upstreamQueueLength,
    upstreamPace,
    singleFlightWaits,
    refreshSkipped,
    queueRejections,
    refusalsReplayed,
    upstreamCallsDropped,
    requestsLimited,
    upstreamFallbacks,
    upstreamBreakerOpen,
    associationsEntries,
    associationsLoaded,
    associationsReloadFailures,
    localValidation,
    upstreamCallsSaved,
    reusedAnswers,
  }
}
