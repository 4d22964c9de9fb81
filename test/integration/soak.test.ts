// A soak of 100,000 distinct tokens through the real servers on an injected clock: every one a
// miss answered by an in-process source; besides them, 20 long-lived pods ask again and again (hits
// that stay cached, and renewals as the clock moves on by a minute per 1,000 requests). The cache
// must stay at its bound, the clock's timers must not grow with the tokens, and once the agent is
// closed no socket or timer it opened may be left (process.getActiveResourcesInfo()).

import { Pool } from 'undici'
import { describe, expect, it } from 'vitest'
import { startAgent } from '../../src/agent.js'
import type { CheckedToken } from '../../src/token/validity.js'
import type { CredentialSource, SourceAnswer } from '../../src/upstream/types.js'
import { ManualClock } from '../../src/util/clock.js'
import { createLogger } from '../../src/util/logger.js'
import { podCredentials } from '../helpers/deferred-source.js'
import { baseConfig } from '../helpers/harness.js'
import { until } from '../helpers/until.js'

const TOKENS = 100_000
const MAX_ENTRIES = 2000

/** Active handles and requests of this process by type, as Node reports them. */
function activeResources(): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of process.getActiveResourcesInfo()) out[r] = (out[r] ?? 0) + 1
  return out
}

/** A JWT-shaped token (unsigned: the agent does not verify signatures) for pod n. */
function token(n: number, expSeconds: number): string {
  const header = Buffer.from('{"alg":"RS256","kid":"soak"}').toString('base64url')
  const claims = Buffer.from(
    JSON.stringify({
      exp: expSeconds,
      sub: 'system:serviceaccount:default:app',
      'kubernetes.io': { namespace: 'default', pod: { name: `soak-${n}`, uid: `uid-${n}` } },
    }),
  ).toString('base64url')
  return `${header}.${claims}.c29hay1zaWduYXR1cmUt${n.toString(36)}`
}

describe(`soak: ${TOKENS} distinct tokens`, () => {
  it('keeps the cache at its bound, the timers flat, and leaves no socket or timer behind', async () => {
    const before = activeResources()
    const clock = new ManualClock(Date.now())
    const source: CredentialSource & { calls: number } = {
      calls: 0,
      fetch(r: CheckedToken): Promise<SourceAnswer> {
        source.calls++
        return Promise.resolve(podCredentials(r.claims.podName ?? '?', clock.now() + 3_600_000))
      },
      warmUp: () => Promise.resolve(),
      close: () => Promise.resolve(),
    }
    const agent = await startAgent(
      baseConfig({ clientMissRate: 0, maxCacheSize: MAX_ENTRIES, verbosity: 'warn' }),
      { clock, source, processMetrics: false, logger: createLogger('warn') },
    )
    const { host, port } = agent.listeners[0]!
    const pool = new Pool(`http://${host}:${port}`, { connections: 16 })
    const ask = async (t: string): Promise<number> => {
      const res = await pool.request({
        path: '/v1/credentials',
        method: 'GET',
        headers: { authorization: t },
      })
      await res.body.dump()
      return res.statusCode
    }

    const expSeconds = Math.floor(clock.now() / 1000) + 24 * 3600
    const statuses: Record<number, number> = {}
    let maxEntries = 0
    let maxTimers = 0
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < TOKENS) {
        const n = next++
        // Every tenth request is one of the 20 long-lived pods (numbered past the distinct ones).
        const status = await ask(token(n % 10 === 9 ? TOKENS + (n % 20) : n, expSeconds))
        statuses[status] = (statuses[status] ?? 0) + 1
        if (n % 1000 === 0) {
          clock.advance(60_000)
          const text = await agent.registry.getSingleMetricAsString('pod_identity_cache_entries')
          maxEntries = Math.max(maxEntries, Number(text.trim().split(' ').pop()))
          maxTimers = Math.max(maxTimers, clock.pendingTimers)
        }
      }
    }
    await Promise.all(Array.from({ length: 16 }, () => worker()))
    expect(statuses).toEqual({ 200: TOKENS })
    expect(maxEntries).toBe(MAX_ENTRIES)
    expect(maxTimers).toBeLessThan(50)
    expect(source.calls).toBeGreaterThanOrEqual(TOKENS * 0.9)
    expect(source.calls).toBeLessThan(TOKENS)
    // Renewals ran (the clock passed half the credentials' life while tokens repeated).
    const renewed = await agent.registry.getSingleMetricAsString('pod_identity_cache_state')
    expect(renewed).toMatch(/state="hit"} [1-9]/)

    await pool.close()
    await agent.close(1000)
    await until(
      () => {
        const now = activeResources()
        return Object.keys(now).every((k) => (now[k] ?? 0) <= (before[k] ?? 0))
      },
      `no resources left beyond ${JSON.stringify(before)}: ${JSON.stringify(activeResources())}`,
    )
  }, 120_000)
})
