import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import {
  OUTCOME_ERROR,
  OUTCOME_HIT,
  OUTCOME_MISS,
  StatusCounter,
} from '../../../src/metrics/hot-path-metrics.js'
import { createMetrics } from '../../../src/metrics/metrics.js'
import { boundedCode } from '../../../src/upstream/error-codes.js'

function setup() {
  const registry = new Registry()
  const metrics = createMetrics({ registry, version: 'test', processMetrics: false })
  return { registry, metrics }
}

describe('createMetrics', () => {
  it('pod_identity_http_response counts per status code', async () => {
    const { registry, metrics } = setup()
    metrics.httpResponses.inc(200)
    metrics.httpResponses.inc(200)
    metrics.httpResponses.inc(403)
    const text = await registry.metrics()
    expect(text).toContain('# TYPE pod_identity_http_response counter')
    expect(text).toContain('pod_identity_http_response{code="200"} 2')
    expect(text).toContain('pod_identity_http_response{code="403"} 1')
    expect(text).not.toContain('pod_identity_http_response{code="500"}')
  })

  it('scrapes are idempotent (counts are not added twice)', async () => {
    const { registry, metrics } = setup()
    metrics.httpResponses.inc(200)
    await registry.metrics()
    metrics.httpResponses.inc(200)
    const text = await registry.metrics()
    expect(text).toContain('pod_identity_http_response{code="200"} 2')
  })

  it('pod_identity_log_lines_dropped_total reads the running total at each scrape', async () => {
    const registry = new Registry()
    let dropped = 5
    createMetrics({
      registry,
      version: 'test',
      logLinesDropped: () => dropped,
      processMetrics: false,
    })
    expect(await registry.metrics()).toContain('\npod_identity_log_lines_dropped_total 5\n')
    expect(await registry.metrics()).toContain('\npod_identity_log_lines_dropped_total 5\n')
    dropped = 7
    expect(await registry.metrics()).toContain('\npod_identity_log_lines_dropped_total 7\n')
  })

  it('gauges show what their owner last set (the cache its size, the gate its queue)', async () => {
    const { registry, metrics } = setup()
    metrics.cacheEntries.set(3)
    metrics.upstreamQueueLength.set({ api: 'eks-auth' }, 2)
    expect(await registry.metrics()).toContain('pod_identity_cache_entries 3')
    expect(await registry.metrics()).toContain(
      'pod_identity_upstream_queue_length{api="eks-auth"} 2',
    )
    metrics.cacheEntries.set(17)
    expect(await registry.metrics()).toContain('pod_identity_cache_entries 17')
  })

  it('exposes the reference names and ours with their labels', async () => {
    const { registry, metrics } = setup()
    metrics.cacheState.inc({ state: 'miss' })
    metrics.cacheState.inc({ state: 'hit' })
    metrics.cacheState.inc({ state: 'evicted' })
    metrics.cacheErrors.inc({ type: 'Recoverable', code: boundedCode('ThrottlingException') })
    metrics.cacheErrors.inc({ type: 'NonRecoverable', code: boundedCode('Bogus') })
    metrics.singleFlightWaits.inc(5)
    metrics.refreshSkipped.inc({ reason: 'rate_limited' })
    metrics.upstreamRequests.inc({ api: 'eks-auth', outcome: 'success' })
    metrics.upstreamDuration.observe({ api: 'eks-auth', outcome: 'success' }, 0.02)
    const text = await registry.metrics()
    for (const line of [
      'pod_identity_cache_state{state="miss"} 1',
      'pod_identity_cache_state{state="hit"} 1',
      'pod_identity_cache_state{state="evicted"} 1',
      'pod_identity_cache_errors{type="Recoverable",code="ThrottlingException"} 1',
      'pod_identity_cache_errors{type="NonRecoverable",code="Other"} 1',
      'pod_identity_cache_singleflight_waits_total 5',
      'pod_identity_cache_refresh_deferred_total{reason="rate_limited"} 1',
      'pod_identity_upstream_requests_total{api="eks-auth",outcome="success"} 1',
      'pod_identity_upstream_request_duration_seconds_count{api="eks-auth",outcome="success"} 1',
      'pod_identity_upstream_request_duration_seconds_bucket{le="0.025",api="eks-auth",outcome="success"} 1',
      'pod_identity_build_info{version="test"} 1',
      'pod_identity_log_lines_dropped_total 0',
    ]) {
      expect(text).toContain(line)
    }
  })

  it('pod_identity_request_duration_seconds: a Prometheus histogram by outcome, cumulative buckets, sum in seconds', async () => {
    const { registry, metrics } = setup()
    const d = metrics.requestDurations
    d.observe(OUTCOME_HIT, 0.004) // 4 us
    d.observe(OUTCOME_HIT, 0.1) // exactly the first bound (le is inclusive)
    d.observe(OUTCOME_HIT, 0.3)
    d.observe(OUTCOME_MISS, 180)
    d.observe(OUTCOME_MISS, 9000) // over the last bound: +Inf only
    const text = await registry.metrics()
    const name = 'pod_identity_request_duration_seconds'
    expect(text).toContain(`# TYPE ${name} histogram`)
    for (const line of [
      `${name}_bucket{le="0.0001",outcome="hit"} 2`,
      `${name}_bucket{le="0.0005",outcome="hit"} 3`,
      `${name}_bucket{le="5",outcome="hit"} 3`,
      `${name}_bucket{le="+Inf",outcome="hit"} 3`,
      `${name}_count{outcome="hit"} 3`,
      `${name}_bucket{le="0.1",outcome="miss"} 0`,
      `${name}_bucket{le="0.25",outcome="miss"} 1`,
      `${name}_bucket{le="5",outcome="miss"} 1`,
      `${name}_bucket{le="+Inf",outcome="miss"} 2`,
      `${name}_sum{outcome="miss"} 9.18`,
      `${name}_count{outcome="miss"} 2`,
    ]) {
      expect(text).toContain(line)
    }
    // an outcome with no request yet has no series, as with prom-client's own label sets
    expect(text).not.toContain('outcome="error"')
    d.observe(OUTCOME_ERROR, 0.02)
    expect(await registry.metrics()).toContain(`${name}_count{outcome="error"} 1`)
    // scrapes do not change it; resetMetrics() empties it
    expect(await registry.metrics()).toContain(`${name}_count{outcome="hit"} 3`)
    registry.resetMetrics()
    expect(await registry.metrics()).not.toContain(`${name}_count`)
  })

  it('processMetrics: false registers no process metrics; the default does', async () => {
    const { registry } = setup()
    const text = await registry.metrics()
    expect(text).not.toContain('process_cpu')
    expect(text).not.toContain('nodejs_')

    const r2 = new Registry()
    createMetrics({ registry: r2, version: 'test' })
    expect(await r2.metrics()).toContain('process_cpu_user_seconds_total')
  })

  it('two registries do not share state', async () => {
    const a = setup()
    const b = setup()
    a.metrics.httpResponses.inc(200)
    a.metrics.cacheState.inc({ state: 'miss' })
    const text = await b.registry.metrics()
    expect(text).not.toContain('pod_identity_http_response{code="200"}')
    expect(text).not.toContain('pod_identity_cache_state{state="miss"}')
  })
})

describe('StatusCounter', () => {
  it('counts per status and ignores out-of-range codes', () => {
    const s = new StatusCounter()
    s.inc(200)
    s.inc(200)
    s.inc(404)
    s.inc(999)
    expect(s.get(200)).toBe(2)
    expect(s.get(404)).toBe(1)
    expect(s.get(500)).toBe(0)
    expect(s.get(999)).toBe(0)
  })
})
