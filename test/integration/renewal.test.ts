// Renewal and stale-if-error through the real server, with the agent's clock driven by the test.

import { describe, expect, it } from 'vitest'
import { ManualClock } from '../../src/util/clock.js'
import type { Harness } from '../helpers/harness.js'
import { metricValue, startHarness } from '../helpers/harness.js'
import { until } from '../helpers/until.js'

/** Polls a metric until it reads `value`, moving the agent's clock 50 ms between looks. */
function metricReaches(h: Harness, clock: ManualClock, series: string, value: number) {
  return until(
    async () => metricValue(await h.metricsText(), series) === value,
    `${series} = ${value}`,
    () => clock.advance(50),
  )
}

describe('background renewal', () => {
  it('renews after the retention window without making the pod wait, and keeps serving while the upstream fails', async () => {
    const clock = new ManualClock(Date.now())
    const h = await startHarness({ deps: { clock } })
    try {
      const file = await h.tokenFile(await h.mint())
      const first = await h.sdkFetch(file)
      expect(h.mock.stats.requests).toBe(1)

      // 2.5 h later: still inside min(3 h retention, 6 h / 2) minus jitter -> no upstream call.
      clock.advance(2.5 * 3_600_000)
      expect((await h.sdkFetch(file)).accessKeyId).toBe(first.accessKeyId)
      expect(h.mock.stats.requests).toBe(1)

      // Upstream failing with 503 when the renewal comes due: the pod still gets the old credentials.
      h.mock.setFaults({ errorRate: 1, errorStatus: 503 })
      clock.advance(1 * 3_600_000) // 3.5 h after the fetch
      expect((await h.sdkFetch(file)).accessKeyId).toBe(first.accessKeyId)
      // The background renewal fails after its 3 attempts (whose backoff runs on the clock).
      await metricReaches(
        h,
        clock,
        'pod_identity_cache_errors{type="Recoverable",code="ServiceUnavailableException"}',
        1,
      )
      expect(h.mock.stats.byOutcome.ServiceUnavailableException).toBe(3)
      expect((await h.sdkFetch(file)).accessKeyId).toBe(first.accessKeyId)
      const text = await h.metricsText()
      expect(
        metricValue(
          text,
          'pod_identity_cache_errors{type="Recoverable",code="ServiceUnavailableException"}',
        ),
      ).toBe(1)

      // Upstream back: after the backoff the next request triggers a renewal; new credentials follow.
      h.mock.setFaults({ errorRate: 0 })
      clock.advance(130_000)
      expect((await h.sdkFetch(file)).accessKeyId).toBe(first.accessKeyId) // served at once, renewal in background
      await metricReaches(h, clock, 'pod_identity_cache_state{state="hit"}', 1)
      const renewed = await h.sdkFetch(file)
      expect(renewed.accessKeyId).not.toBe(first.accessKeyId)
      expect(metricValue(await h.metricsText(), 'pod_identity_cache_state{state="hit"}')).toBe(1)
    } finally {
      await h.close()
    }
  })

  it('an irrecoverable renewal answer evicts the entry: the next request gets the upstream error', async () => {
    const clock = new ManualClock(Date.now())
    const h = await startHarness({ deps: { clock } })
    try {
      const file = await h.tokenFile(await h.mint())
      await h.sdkFetch(file)
      h.mock.setAssociations([]) // the association was deleted
      clock.advance(3.5 * 3_600_000)
      await h.sdkFetch(file) // served from cache, renewal starts
      await metricReaches(h, clock, 'pod_identity_cache_state{state="evicted"}', 1)
      const err = (await h.sdkFetch(file).catch((e: unknown) => e)) as Error
      expect(err.message).toContain('404')
      const text = await h.metricsText()
      expect(metricValue(text, 'pod_identity_cache_state{state="evicted"}')).toBe(1)
      expect(
        metricValue(
          text,
          'pod_identity_cache_errors{type="NonRecoverable",code="ResourceNotFoundException"}',
        ),
      ).toBe(1)
    } finally {
      await h.close()
    }
  })

  it('never serves past the token expiry, even with valid cached credentials', async () => {
    const clock = new ManualClock(Date.now())
    const h = await startHarness({ deps: { clock } })
    try {
      const file = await h.tokenFile(await h.mint({ nowMs: clock.now(), expiresInSeconds: 3600 }))
      await h.sdkFetch(file)
      clock.advance(3600_000)
      const err = (await h.sdkFetch(file).catch((e: unknown) => e)) as Error
      expect(err.message).toContain('400')
      expect(h.mock.stats.requests).toBe(1)
    } finally {
      await h.close()
    }
  })
})
