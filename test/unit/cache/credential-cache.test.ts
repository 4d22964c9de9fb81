import { Registry } from 'prom-client'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { cacheKey } from '../../../src/cache/cache-key.js'
import type { CacheEntry } from '../../../src/cache/cache-entry.js'
import type { CredentialCacheOptions } from '../../../src/cache/credential-cache.js'
import { CredentialCache } from '../../../src/cache/credential-cache.js'
import { tokenScope } from '../../../src/cache/entry-scope.js'
import { AgentError, UpstreamError } from '../../../src/errors.js'
import { createMetrics } from '../../../src/metrics/metrics.js'
import type { TokenClaims } from '../../../src/token/parse-token.js'
import type { CheckedToken } from '../../../src/token/validity.js'
import { NBF_SKEW_MS } from '../../../src/token/validity.js'
import { isIrrecoverableEksAuthCode } from '../../../src/upstream/error-codes.js'
import { gated } from '../../../src/upstream/gated-source.js'
import type { CredentialSource, SourceAnswer } from '../../../src/upstream/types.js'
import { ManualClock } from '../../../src/util/clock.js'
import { createLogger, tokenDigest } from '../../../src/util/logger.js'
import { TokenBucket } from '../../../src/util/token-bucket.js'
import { DeferredSource, flush, podCredentials, runFor } from '../../helpers/deferred-source.js'
import type { LogLines } from '../../helpers/log-lines.js'
import { logLines } from '../../helpers/log-lines.js'

const S = 1000
const MIN = 60 * S
const H = 60 * MIN

/** Every token and secret handed to a cache in this file: none may ever reach a log line. */
const secrets = new Set<string>()
const sinks: LogLines[] = []
let linesChecked = 0

function tok(name: string): string {
  const t = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(`claims-of-${name}`).toString('base64url')}.c2lnLSR7${name}`
  secrets.add(t)
  return t
}

function creds(n: number | string, expirationMs: number): SourceAnswer {
  const c = podCredentials(n, expirationMs)
  secrets.add(c.credentials.secretAccessKey)
  secrets.add(c.credentials.sessionToken)
  return c
}

/** Cache options, plus the upstream gate's windows (the gate sits in front of the source). */
type SetupOptions = Partial<Omit<CredentialCacheOptions, 'source'>> & {
  initialUpstreamWindow?: number
  maxUpstreamWindow?: number
}

interface Setup {
  cache: CredentialCache
  fetcher: DeferredSource
  clock: ManualClock
  registry: Registry
  logs: LogLines
  t0: number
  claims(over?: Partial<TokenClaims>): TokenClaims
  metric(name: string, labels?: Record<string, string>): Promise<number>
}

function setup(opts: SetupOptions = {}): Setup {
  const { initialUpstreamWindow, maxUpstreamWindow, ...cacheOpts } = opts
  const clock = new ManualClock()
  const t0 = clock.now()
  const fetcher = new DeferredSource()
  const registry = new Registry()
  const logs = logLines()
  sinks.push(logs)
  const metrics = createMetrics({ registry, version: 'test', processMetrics: false })
  const cache = new CredentialCache({
    source: gated(fetcher, {
      clock,
      api: 'eks-auth',
      metrics,
      initialWindow: initialUpstreamWindow,
      maxWindow: maxUpstreamWindow,
    }),
    clock,
    metrics,
    logger: createLogger('trace', logs),
    maxEntries: 100,
    maxRetentionMs: 3 * H,
    refreshQps: 3,
    random: () => 0.5,
    ...cacheOpts,
  })
  return {
    cache,
    fetcher,
    clock,
    registry,
    logs,
    t0,
    claims: (over = {}) => ({
      expMs: t0 + 24 * H,
      nbfMs: -Infinity,
      namespace: 'default',
      serviceAccount: 'app',
      podName: 'app-7d4b9c-xk2p1',
      podUid: '6b1f7c2e-0c8d-4a52-9d0e-2f3c4b5a6d7e',
      ...over,
    }),
    async metric(name, labels = {}) {
      const all = await registry.getMetricsAsJSON()
      const m = all.find((x) => x.name === name)
      if (m === undefined) throw new Error(`no metric ${name}`)
      const want = JSON.stringify(Object.entries(labels).sort())
      const v = m.values.find((x) => JSON.stringify(Object.entries(x.labels).sort()) === want)
      return v?.value ?? 0
    },
  }
}

/** Resolve `token` through a fresh upstream call answered with `c`; returns the cached entry. */
async function prime(s: Setup, token: string, c: SourceAnswer, claims = s.claims()) {
  const p = s.cache.resolve(tokenScope({ token, claims }))
  s.fetcher.last().resolve(c)
  const entry = await p
  await flush()
  return entry
}

/** EKS Auth's error answer: irrecoverable or not as the upstream's error table says. */
function upstream(code: string, statusCode: number): UpstreamError {
  return new UpstreamError({
    statusCode,
    code,
    message: `upstream said ${code}`,
    requestId: 'req-1',
    irrecoverable: isIrrecoverableEksAuthCode(code, statusCode),
  })
}

afterEach(() => {
  for (const l of sinks) {
    expect(l.leaking(secrets)).toEqual([])
    linesChecked += l.lines.length
  }
  sinks.length = 0
})

afterAll(() => {
  // The leak check above must have seen real log lines (trace level), or it proves nothing.
  expect(linesChecked).toBeGreaterThan(50)
})

describe('CredentialCache single flight', () => {
  it('200 concurrent resolves for one token make exactly one upstream call', async () => {
    const s = setup()
    const token = tok('sf')
    const ps = Array.from({ length: 200 }, () =>
      s.cache.resolve(tokenScope({ token: token, claims: s.claims() })),
    )
    expect(s.fetcher.count).toBe(1)
    expect(s.cache.inflight).toBe(1)
    s.fetcher.last().resolve(creds(1, s.t0 + 6 * H))
    const entries = await Promise.all(ps)
    expect(s.fetcher.count).toBe(1)
    expect(new Set(entries).size).toBe(1)
    expect(entries[0]?.body.toString()).toContain('"AccessKeyId":"ASIATEST1"')
    expect(s.cache.inflight).toBe(0)
    expect(await s.metric('pod_identity_cache_singleflight_waits_total')).toBe(199)
    expect(await s.metric('pod_identity_cache_state', { state: 'miss' })).toBe(1)
  })

  it('join() awaits the call in flight without claims, only while the token is within its validity', async () => {
    const s = setup()
    const token = tok('join')
    expect(s.cache.join(token, s.clock.now())).toBeUndefined() // nothing in flight
    const first = s.cache.resolve(
      tokenScope({ token: token, claims: s.claims({ expMs: s.t0 + 10 * MIN }) }),
    )
    const joined = s.cache.join(token, s.clock.now())
    expect(joined).toBeDefined()
    expect(s.cache.join(token, s.t0 + 10 * MIN)).toBeUndefined() // expired by then: parse and refuse
    expect(s.cache.join(tok('other'), s.clock.now())).toBeUndefined()
    s.fetcher.last().resolve(creds('j', s.t0 + 6 * H))
    expect(await joined).toBe(await first)
    expect(s.fetcher.count).toBe(1)
    expect(await s.metric('pod_identity_cache_singleflight_waits_total')).toBe(1)
  })

  it('different tokens get separate calls and separate entries', async () => {
    const s = setup()
    const a = tok('sf-a')
    const b = tok('sf-b')
    const pa = [
      s.cache.resolve(tokenScope({ token: a, claims: s.claims() })),
      s.cache.resolve(tokenScope({ token: a, claims: s.claims() })),
    ]
    const pb = [
      s.cache.resolve(tokenScope({ token: b, claims: s.claims() })),
      s.cache.resolve(tokenScope({ token: b, claims: s.claims() })),
    ]
    expect(s.fetcher.count).toBe(2)
    expect(s.fetcher.callsFor(a)).toHaveLength(1)
    expect(s.fetcher.callsFor(b)).toHaveLength(1)
    s.fetcher.callsFor(b)[0]?.resolve(creds('B', s.t0 + 6 * H))
    s.fetcher.callsFor(a)[0]?.resolve(creds('A', s.t0 + 6 * H))
    const [ea1, ea2] = await Promise.all(pa)
    const [eb1, eb2] = await Promise.all(pb)
    expect(ea1).toBe(ea2)
    expect(eb1).toBe(eb2)
    expect(ea1?.body.toString()).toContain('ASIATESTA')
    expect(eb1?.body.toString()).toContain('ASIATESTB')
    expect(await s.metric('pod_identity_cache_state', { state: 'miss' })).toBe(2)
    expect(await s.metric('pod_identity_cache_singleflight_waits_total')).toBe(2)
  })

  it('a failed call rejects every waiter with the same error', async () => {
    const s = setup()
    const token = tok('sf-fail')
    const ps = Array.from({ length: 5 }, () =>
      s.cache.resolve(tokenScope({ token: token, claims: s.claims() })),
    )
    const err = upstream('ServiceUnavailableException', 503)
    s.fetcher.last().reject(err)
    const results = await Promise.allSettled(ps)
    for (const r of results) {
      expect(r.status).toBe('rejected')
      expect((r as PromiseRejectedResult).reason).toBe(err)
    }
    expect(s.fetcher.count).toBe(1)
    expect(s.cache.inflight).toBe(0)
  })
})

describe('CredentialCache lookup after a fetch', () => {
  it('serves the entry without an upstream call, body in the contract key order', async () => {
    const s = setup()
    const token = tok('body')
    expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
    const c = creds(7, s.t0 + 6 * H)
    const resolved = await prime(s, token, c)
    s.clock.advance(MIN)
    const hit = s.cache.lookup(token, s.clock.now())
    expect(hit).toBe(resolved)
    expect(s.fetcher.count).toBe(1)
    const expected =
      `{"AccessKeyId":"ASIATEST7","SecretAccessKey":"${c.credentials.secretAccessKey}","Token":"${c.credentials.sessionToken}",` +
      `"AccountId":"111122223333","Expiration":"2026-01-01T06:00:00Z"}`
    expect(hit?.body.toString()).toBe(expected)
    expect(Object.keys(JSON.parse(hit?.body.toString() ?? '{}'))).toEqual([
      'AccessKeyId',
      'SecretAccessKey',
      'Token',
      'AccountId',
      'Expiration',
    ])
    expect(hit?.headers).toEqual([
      'Content-Type',
      'application/json',
      'Content-Length',
      String(Buffer.byteLength(expected)),
    ])
    expect(hit?.association.namespace).toBe('default')
    expect(hit?.association.serviceAccount).toBe('app')
    expect(hit?.fetchedBy.pod).toBe('app-7d4b9c-xk2p1')
    expect(hit?.association.id).toBe('a-test0001')
    expect(s.cache.size).toBe(1)
    expect(await s.metric('pod_identity_cache_entries')).toBe(1)
  })

  it('a hit needs the exact token string', async () => {
    const s = setup()
    const token = tok('exact')
    await prime(s, token, creds(1, s.t0 + 6 * H))
    expect(s.cache.lookup(`${token}x`, s.clock.now())).toBeUndefined()
    expect(s.cache.lookup(token.slice(0, -1), s.clock.now())).toBeUndefined()
    expect(s.cache.lookup(` ${token}`, s.clock.now())).toBeUndefined()
    expect(s.cache.lookup(token, s.clock.now())).toBeDefined()
  })

  // The Map key is the token's length and last 7 characters (cacheKey): two tokens can share it.
  it('two tokens sharing a key: each is served only its own credentials', async () => {
    const s = setup()
    const a = tok('shared-A-tail1234')
    const b = `${a.slice(0, 30)}Q${a.slice(31)}` // same length, same tail, another token
    secrets.add(b)
    expect(b).not.toBe(a)
    expect(cacheKey(b)).toBe(cacheKey(a))
    await prime(s, a, creds('A', s.t0 + 6 * H))
    expect(s.cache.lookup(b, s.clock.now())).toBeUndefined()
    // b's own fetch replaces a's entry (one entry per key); a then misses, never gets b's.
    await prime(s, b, creds('B', s.t0 + 6 * H))
    expect(s.cache.lookup(b, s.clock.now())?.body.toString()).toContain('ASIATESTB')
    expect(s.cache.lookup(a, s.clock.now())).toBeUndefined()
    expect(s.fetcher.count).toBe(2)
  })

  it('a failed call for a token sharing a key leaves the cached entry alone', async () => {
    const s = setup()
    const a = tok('forged-A-tail123')
    const forged = `${a.slice(0, 25)}x${a.slice(26)}`
    secrets.add(forged)
    expect(forged).not.toBe(a)
    expect(cacheKey(forged)).toBe(cacheKey(a))
    await prime(s, a, creds('A', s.t0 + 6 * H))
    const p = s.cache.resolve(tokenScope({ token: forged, claims: s.claims() }))
    s.fetcher.last().reject(upstream('AccessDeniedException', 403))
    await expect(p).rejects.toBeInstanceOf(UpstreamError)
    expect(s.cache.lookup(a, s.clock.now())?.body.toString()).toContain('ASIATESTA')
    expect(s.cache.size).toBe(1)
  })

  it('cacheKey: a safe integer, distinct when the length or one of the last 7 characters differs', () => {
    const t = tok('key-bits')
    const k = cacheKey(t)
    expect(Number.isSafeInteger(k)).toBe(true)
    expect(Number.isSafeInteger(cacheKey('\uffff'.repeat(2000)))).toBe(true)
    const keys = new Set([k])
    for (let i = 1; i <= 7; i++) {
      const at = t.length - i
      keys.add(cacheKey(`${t.slice(0, at)}${t[at] === 'A' ? 'B' : 'A'}${t.slice(at + 1)}`))
    }
    keys.add(cacheKey(`A${t}`))
    keys.add(cacheKey(t.slice(1)))
    expect(keys.size).toBe(10)
    expect(new Set(['', 'a', 'aa', 'b', 'ab', 'ba']).size).toBe(
      new Set(['', 'a', 'aa', 'b', 'ab', 'ba'].map(cacheKey)).size,
    )
  })
})

describe('CredentialCache expiry', () => {
  it('serves until credential expiry - 15 s (exclusive), then misses', async () => {
    const s = setup()
    const token = tok('exp')
    const T = s.t0 + 2 * H
    await prime(s, token, creds(1, T))
    s.clock.set(T - 15 * S - 1)
    expect(s.cache.lookup(token, s.clock.now())?.body.toString()).toContain('ASIATEST1')
    s.clock.set(T - 15 * S)
    expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
    s.clock.set(T + H)
    expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
  })

  it("never serves at or after the token's own exp, however long the credentials live", async () => {
    const s = setup()
    const token = tok('tokexp')
    const expMs = s.t0 + 10 * MIN
    await prime(s, token, creds(1, s.t0 + 6 * H), s.claims({ expMs }))
    s.clock.set(expMs - 1)
    expect(s.cache.lookup(token, s.clock.now())).toBeDefined()
    s.clock.set(expMs)
    expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
    // the token dies before renewal would be due: never renewed
    expect(s.fetcher.count).toBe(1)
  })

  it("never serves before the token's nbf (less the clock-skew allowance)", async () => {
    const s = setup()
    const token = tok('nbf')
    const nbfMs = s.t0 + NBF_SKEW_MS + MIN
    const from = nbfMs - NBF_SKEW_MS
    const e = await prime(s, token, creds(1, s.t0 + 6 * H), s.claims({ nbfMs }))
    expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
    s.clock.set(from - 1)
    expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
    s.clock.set(from)
    expect(s.cache.lookup(token, s.clock.now())).toBe(e)
    // a renewal keeps the same window (the allowance is not applied twice)
    s.clock.set(s.t0 + 3.5 * H)
    expect(s.cache.lookup(token, s.clock.now())).toBe(e)
    s.fetcher.last().resolve(creds(2, s.clock.now() + 6 * H))
    await flush()
    const fresh = s.cache.lookup(token, s.clock.now())
    expect(fresh?.body.toString()).toContain('ASIATEST2')
    expect(s.cache.binding(token)?.slot.renewWith.claims.nbfMs).toBe(nbfMs)
    expect(s.cache.binding(token)?.slot.entry).toBe(fresh)
  })

  it('after expiry the next resolve calls the upstream again', async () => {
    const s = setup()
    const token = tok('exp-again')
    const T = s.t0 + 2 * H
    await prime(s, token, creds(1, T))
    s.clock.set(T)
    expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
    const before = s.fetcher.count
    const e = await prime(s, token, creds(2, T + 6 * H))
    expect(s.fetcher.count).toBe(before + 1)
    expect(s.cache.lookup(token, s.clock.now())).toBe(e)
    expect(e.body.toString()).toContain('ASIATEST2')
  })
})

describe('CredentialCache short-lived credentials', () => {
  it('rejects credentials with 15 s or less left (502 InvalidUpstreamResponse) and caches nothing', async () => {
    const s = setup()
    const token = tok('short')
    for (const left of [15 * S, 5 * S, 0, -H]) {
      const p = s.cache.resolve(tokenScope({ token: token, claims: s.claims() }))
      s.fetcher.last().resolve(creds('short', s.clock.now() + left))
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(AgentError)
      expect((err as AgentError).code).toBe('InvalidUpstreamResponse')
      expect((err as AgentError).statusCode).toBe(502)
      expect((err as AgentError).message).toBe(
        'fetched credentials are expired or will expire within the next 15.00 seconds',
      )
      expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
      expect(s.cache.size).toBe(0)
    }
    expect(s.fetcher.count).toBe(4)
  })

  it('accepts credentials with just over 15 s left, servable until expiry - 15 s', async () => {
    const s = setup()
    const token = tok('short-ok')
    await prime(s, token, creds(1, s.t0 + 15 * S + 2))
    expect(s.cache.lookup(token, s.t0 + 1)).toBeDefined()
    expect(s.cache.lookup(token, s.t0 + 2)).toBeUndefined()
  })
})

describe('CredentialCache refresh ahead', () => {
  for (const r of [0, 0.5, 0.999]) {
    it(`6 h credentials, 3 h retention (random ${r}): renews between 2.7 h and 3.3 h, serving the old entry meanwhile`, async () => {
      const s = setup({ random: () => r })
      const token = tok(`ahead-${r}`)
      const old = await prime(s, token, creds('old', s.t0 + 6 * H))

      s.clock.set(s.t0 + 2.7 * H - 1)
      expect(s.cache.lookup(token, s.clock.now())).toBe(old)
      expect(s.fetcher.count).toBe(1)

      s.clock.set(s.t0 + 3.3 * H)
      expect(s.cache.lookup(token, s.clock.now())).toBe(old)
      expect(s.fetcher.count).toBe(2)
      // a second lookup while the renewal is in flight joins nothing and starts nothing
      expect(s.cache.lookup(token, s.clock.now())).toBe(old)
      expect(s.fetcher.count).toBe(2)
      expect(s.fetcher.last().token).toBe(token)

      s.fetcher.last().resolve(creds('new', s.clock.now() + 6 * H))
      await flush()
      const fresh = s.cache.lookup(token, s.clock.now())
      expect(fresh).not.toBe(old)
      expect(fresh?.body.toString()).toContain('"AccessKeyId":"ASIATESTnew"')
      expect(s.fetcher.count).toBe(2)
      expect(await s.metric('pod_identity_cache_state', { state: 'hit' })).toBe(1)
      expect(await s.metric('pod_identity_cache_state', { state: 'miss' })).toBe(1)
      expect(await s.metric('pod_identity_cache_state', { state: 'evicted' })).toBe(0)
      expect(s.cache.size).toBe(1)
    })
  }

  it('1 h retention renews at 0.9 h with random 0', async () => {
    const s = setup({ maxRetentionMs: H, random: () => 0 })
    const token = tok('ahead-1h-lo')
    const old = await prime(s, token, creds('old', s.t0 + 6 * H))
    s.clock.set(s.t0 + 0.9 * H - 1)
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(s.fetcher.count).toBe(1)
    s.clock.set(s.t0 + 0.9 * H + 1)
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(s.fetcher.count).toBe(2)
  })

  it('1 h retention renews before 1.1 h with random 0.999, not at 1 h', async () => {
    const s = setup({ maxRetentionMs: H, random: () => 0.999 })
    const token = tok('ahead-1h-hi')
    const old = await prime(s, token, creds('old', s.t0 + 6 * H))
    s.clock.set(s.t0 + H)
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(s.fetcher.count).toBe(1)
    s.clock.set(s.t0 + 1.1 * H)
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(s.fetcher.count).toBe(2)
  })

  it('short credentials renew at half their life when that comes before the retention', async () => {
    const s = setup({ maxRetentionMs: 3 * H, random: () => 0.5 })
    const token = tok('ahead-half')
    const old = await prime(s, token, creds('old', s.t0 + H))
    s.clock.set(s.t0 + 30 * MIN - 1)
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(s.fetcher.count).toBe(1)
    s.clock.set(s.t0 + 30 * MIN)
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(s.fetcher.count).toBe(2)
  })

  it('entries nobody asks for are not renewed (no lookup, no call)', async () => {
    const s = setup()
    const token = tok('idle')
    await prime(s, token, creds(1, s.t0 + 6 * H))
    s.clock.set(s.t0 + 5 * H)
    expect(s.fetcher.count).toBe(1)
    expect(s.clock.pendingTimers).toBe(0)
  })
})

describe('CredentialCache stale if error', () => {
  it('keeps serving the old entry after a 503 and retries only after the backoff', async () => {
    const s = setup()
    const token = tok('stale')
    const old = await prime(s, token, creds('old', s.t0 + 6 * H))
    s.clock.set(s.t0 + 3.5 * H)
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(s.fetcher.count).toBe(2)
    s.fetcher.last().reject(upstream('ServiceUnavailableException', 503))
    await flush()

    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(s.fetcher.count).toBe(2)
    expect(
      await s.metric('pod_identity_cache_errors', {
        type: 'Recoverable',
        code: 'ServiceUnavailableException',
      }),
    ).toBe(1)
    expect(await s.metric('pod_identity_cache_state', { state: 'hit' })).toBe(0)
    expect(await s.metric('pod_identity_cache_state', { state: 'evicted' })).toBe(0)

    s.clock.advance(120 * S + 1)
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(s.fetcher.count).toBe(3)
    s.fetcher.last().resolve(creds('new', s.clock.now() + 6 * H))
    await flush()
    expect(s.cache.lookup(token, s.clock.now())?.body.toString()).toContain('ASIATESTnew')
    expect(await s.metric('pod_identity_cache_state', { state: 'hit' })).toBe(1)
  })

  it('backs off exponentially (5 s doubling, capped at 120 s, jitter 50-100 %)', async () => {
    const s = setup({ random: () => 0 })
    const token = tok('backoff')
    const old = await prime(s, token, creds('old', s.t0 + 6 * H))
    s.clock.set(s.t0 + 2.7 * H)
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    let calls = 2
    expect(s.fetcher.count).toBe(calls)
    // with random 0 the wait is half the step: 2.5 s, 5 s, 10 s, 20 s, 40 s, 60 s, 60 s
    for (const waitMs of [2_500, 5_000, 10_000, 20_000, 40_000, 60_000, 60_000]) {
      s.fetcher.last().reject(upstream('ThrottlingException', 429))
      await flush()
      s.clock.advance(waitMs - 1)
      expect(s.cache.lookup(token, s.clock.now())).toBe(old)
      expect(s.fetcher.count).toBe(calls)
      s.clock.advance(1)
      expect(s.cache.lookup(token, s.clock.now())).toBe(old)
      calls++
      expect(s.fetcher.count).toBe(calls)
    }
    expect(
      await s.metric('pod_identity_cache_errors', {
        type: 'Recoverable',
        code: 'ThrottlingException',
      }),
    ).toBe(7)
  })

  it('an unexpected failure or short-lived renewal also keeps the old entry', async () => {
    const s = setup()
    const token = tok('stale-other')
    const old = await prime(s, token, creds('old', s.t0 + 6 * H))
    s.clock.set(s.t0 + 3.5 * H)
    s.cache.lookup(token, s.clock.now())
    s.fetcher.last().reject(new TypeError(`socket blew up near ${token}`))
    await flush()
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(
      await s.metric('pod_identity_cache_errors', { type: 'Recoverable', code: 'InternalError' }),
    ).toBe(1)

    s.clock.advance(121 * S)
    s.cache.lookup(token, s.clock.now())
    expect(s.fetcher.count).toBe(3)
    s.fetcher.last().resolve(creds('dying', s.clock.now() + 10 * S))
    await flush()
    expect(s.cache.lookup(token, s.clock.now())).toBe(old)
    expect(
      await s.metric('pod_identity_cache_errors', {
        type: 'Recoverable',
        code: 'InvalidUpstreamResponse',
      }),
    ).toBe(1)
  })

  it('unknown upstream codes are folded into Other', async () => {
    const s = setup()
    const token = tok('stale-odd')
    await prime(s, token, creds('old', s.t0 + 6 * H))
    s.clock.set(s.t0 + 3.5 * H)
    s.cache.lookup(token, s.clock.now())
    s.fetcher.last().reject(upstream('SomethingNewException', 500))
    await flush()
    expect(
      await s.metric('pod_identity_cache_errors', { type: 'Recoverable', code: 'Other' }),
    ).toBe(1)
  })
})

describe('CredentialCache irrecoverable renewal errors', () => {
  for (const [code, status] of [
    ['InvalidTokenException', 400],
    ['ResourceNotFoundException', 404],
    ['AccessDeniedException', 400],
    ['ExpiredTokenException', 400],
  ] as const) {
    it(`${code} (${status}) evicts the entry at once`, async () => {
      const s = setup()
      const token = tok(`irr-${code}`)
      const old = await prime(s, token, creds('old', s.t0 + 6 * H))
      s.clock.set(s.t0 + 3.5 * H)
      expect(s.cache.lookup(token, s.clock.now())).toBe(old)
      s.fetcher.last().reject(upstream(code, status))
      await flush()
      expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
      expect(s.cache.size).toBe(0)
      expect(await s.metric('pod_identity_cache_entries')).toBe(0)
      expect(await s.metric('pod_identity_cache_state', { state: 'evicted' })).toBe(1)
      expect(await s.metric('pod_identity_cache_errors', { type: 'NonRecoverable', code })).toBe(1)
      expect(await s.metric('pod_identity_cache_errors', { type: 'Recoverable', code })).toBe(0)
      // the next request goes upstream again
      const p = s.cache.resolve(tokenScope({ token: token, claims: s.claims() }))
      expect(s.fetcher.count).toBe(3)
      s.fetcher.last().reject(upstream(code, status))
      await expect(p).rejects.toMatchObject({ code, statusCode: status })
    })
  }
})

describe('CredentialCache request-path errors', () => {
  it('caches nothing and lets the next resolve call again', async () => {
    const s = setup()
    const token = tok('req-err')
    const p1 = s.cache.resolve(tokenScope({ token: token, claims: s.claims() }))
    s.fetcher.last().reject(upstream('ServiceUnavailableException', 503))
    await expect(p1).rejects.toMatchObject({ code: 'ServiceUnavailableException', statusCode: 503 })
    expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
    expect(s.cache.size).toBe(0)
    expect(s.cache.inflight).toBe(0)

    const p2 = s.cache.resolve(tokenScope({ token: token, claims: s.claims() }))
    expect(s.fetcher.count).toBe(2)
    s.fetcher.last().resolve(creds(2, s.t0 + 6 * H))
    await p2
    expect(s.cache.lookup(token, s.clock.now())?.body.toString()).toContain('ASIATEST2')
    expect(await s.metric('pod_identity_cache_state', { state: 'miss' })).toBe(2)
    // errors on the request path are not renewal errors
    expect(
      await s.metric('pod_identity_cache_errors', {
        type: 'Recoverable',
        code: 'ServiceUnavailableException',
      }),
    ).toBe(0)
  })

  it('an irrecoverable answer is passed through unchanged and nothing is evicted or cached', async () => {
    const s = setup()
    const token = tok('req-irr')
    const err = upstream('InvalidTokenException', 400)
    const p = s.cache.resolve(tokenScope({ token: token, claims: s.claims() }))
    s.fetcher.last().reject(err)
    await expect(p).rejects.toBe(err)
    expect(s.cache.size).toBe(0)
    expect(await s.metric('pod_identity_cache_state', { state: 'evicted' })).toBe(0)
  })

  it('a non-AgentError becomes a generic 500 that reveals nothing', async () => {
    const s = setup()
    const token = tok('req-odd')
    const p = s.cache.resolve(tokenScope({ token: token, claims: s.claims() }))
    const c = creds('leak', s.t0 + H)
    s.fetcher
      .last()
      .reject(new Error(`parse failure in ${c.credentials.secretAccessKey} for ${token}`))
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(AgentError)
    expect(err).toMatchObject({ code: 'InternalError', statusCode: 500 })
    expect((err as AgentError).message).not.toContain(c.credentials.secretAccessKey)
    expect((err as AgentError).message).not.toContain(token)
    expect(s.cache.size).toBe(0)
  })
})

describe('CredentialCache LRU bound', () => {
  it('maxEntries 3 with 5 tokens keeps the 3 most recent', async () => {
    const s = setup({ maxEntries: 3 })
    const tokens = [0, 1, 2, 3, 4].map((i) => tok(`lru-${i}`))
    for (const [i, t] of tokens.entries()) await prime(s, t, creds(i, s.t0 + 6 * H))
    expect(s.cache.size).toBe(3)
    expect(await s.metric('pod_identity_cache_entries')).toBe(3)
    expect(s.cache.lookup(tokens[0] as string, s.clock.now())).toBeUndefined()
    expect(s.cache.lookup(tokens[1] as string, s.clock.now())).toBeUndefined()
    for (const i of [2, 3, 4]) {
      expect(s.cache.lookup(tokens[i] as string, s.clock.now())?.body.toString()).toContain(
        `ASIATEST${i}`,
      )
    }
    expect(await s.metric('pod_identity_cache_state', { state: 'evicted' })).toBe(2)
  })

  it('evicts the least recently used, not the oldest', async () => {
    const s = setup({ maxEntries: 3 })
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => tok(`lru-r-${n}`)) as [
      string,
      string,
      string,
      string,
    ]
    await prime(s, a, creds('a', s.t0 + 6 * H))
    await prime(s, b, creds('b', s.t0 + 6 * H))
    await prime(s, c, creds('c', s.t0 + 6 * H))
    expect(s.cache.lookup(a, s.clock.now())).toBeDefined()
    await prime(s, d, creds('d', s.t0 + 6 * H))
    expect(s.cache.lookup(b, s.clock.now())).toBeUndefined()
    expect(s.cache.lookup(a, s.clock.now())).toBeDefined()
    expect(s.cache.lookup(c, s.clock.now())).toBeDefined()
    expect(s.cache.lookup(d, s.clock.now())).toBeDefined()
  })

  for (const opts of [{ maxEntries: 0 }, { maxRetentionMs: 0 }]) {
    it(`${JSON.stringify(opts)} caches nothing, but concurrent resolves still share one call`, async () => {
      const s = setup(opts)
      const token = tok(`nocache-${Object.keys(opts)[0]}`)
      for (let round = 1; round <= 3; round++) {
        const ps = Array.from({ length: 10 }, () =>
          s.cache.resolve(tokenScope({ token: token, claims: s.claims() })),
        )
        expect(s.fetcher.count).toBe(round)
        s.fetcher.last().resolve(creds(round, s.t0 + 6 * H))
        const entries = await Promise.all(ps)
        expect(new Set(entries).size).toBe(1)
        expect(entries[0]?.body.toString()).toContain(`ASIATEST${round}`)
        expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
        expect(s.cache.size).toBe(0)
      }
      expect(await s.metric('pod_identity_cache_state', { state: 'miss' })).toBe(3)
      expect(await s.metric('pod_identity_cache_singleflight_waits_total')).toBe(27)
    })
  }
})

describe('CredentialCache refresh rate limit', () => {
  it('refreshQps 1: ten due entries start one renewal at a time, the rest later', async () => {
    const s = setup({ refreshQps: 1, maxRetentionMs: H, random: () => 0.5 })
    const tokens = Array.from({ length: 10 }, (_, i) => tok(`rl-${i}`))
    for (const [i, t] of tokens.entries()) await prime(s, t, creds(`old${i}`, s.t0 + 6 * H))
    expect(s.fetcher.count).toBe(10)

    s.clock.set(s.t0 + H)
    for (const t of tokens) expect(s.cache.lookup(t, s.clock.now())).toBeDefined()
    expect(s.fetcher.count).toBe(11)
    expect(
      await s.metric('pod_identity_cache_refresh_deferred_total', { reason: 'rate_limited' }),
    ).toBe(9)

    // everyone keeps asking; each renewal is answered at once; time moves 100 ms per round
    let answered = 10
    const answer = async () => {
      for (; answered < s.fetcher.count; answered++) {
        s.fetcher.calls[answered]?.resolve(creds(`new${answered}`, s.clock.now() + 6 * H))
      }
      await flush()
    }
    let rounds = 0
    while (s.fetcher.count < 20 && rounds < 1000) {
      await answer()
      s.clock.advance(100)
      for (const t of tokens) s.cache.lookup(t, s.clock.now())
      rounds++
    }
    expect(s.fetcher.count).toBe(20)
    await answer()
    // exactly one renewal per token, never faster than 1 per second
    for (const t of tokens) expect(s.fetcher.callsFor(t)).toHaveLength(2)
    const elapsed = s.clock.now() - (s.t0 + H)
    expect(elapsed).toBeGreaterThanOrEqual(9 * S)
    expect(elapsed).toBeLessThan(20 * S)
    for (const t of tokens) {
      expect(s.cache.lookup(t, s.clock.now())?.body.toString()).toContain('ASIATESTnew')
    }
    expect(await s.metric('pod_identity_cache_state', { state: 'hit' })).toBe(10)
  })

  it('rate limiting never touches the request path', async () => {
    const s = setup({ refreshQps: 1 })
    const tokens = Array.from({ length: 5 }, (_, i) => tok(`rl-req-${i}`))
    const ps = tokens.map((t) => s.cache.resolve(tokenScope({ token: t, claims: s.claims() })))
    expect(s.fetcher.count).toBe(5)
    for (const [i, c] of s.fetcher.calls.entries()) c.resolve(creds(i, s.t0 + 6 * H))
    await Promise.all(ps)
    expect(
      await s.metric('pod_identity_cache_refresh_deferred_total', { reason: 'rate_limited' }),
    ).toBe(0)
  })
})

describe('CredentialCache, EKS Auth throttling this node', () => {
  /** Token A throttled once: the gate now paces at 1 call/s (no success in the last second). */
  async function throttledOnce(s: Setup, token: string) {
    const p = s.cache.resolve(tokenScope({ token: token, claims: s.claims() }))
    s.fetcher.last().reject(upstream('ThrottlingException', 429))
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    )
    return err as AgentError
  }

  it('answers 503 UpstreamThrottled with Retry-After, keeps the call queued, and serves the retry from its result', async () => {
    const s = setup()
    const token = tok('throttled')
    const err = await throttledOnce(s, token)
    expect(err).toBeInstanceOf(AgentError)
    expect(err.statusCode).toBe(503)
    expect(err.code).toBe('UpstreamThrottled')
    expect(err.retryAfterSeconds).toBe(1)
    expect(err.message).toBe(
      "EKS Auth is throttling this node's calls; the call for these credentials is queued and should run within about 1 s: retry after 1 s",
    )
    expect(await s.metric('pod_identity_upstream_queue_length', { api: 'eks-auth' })).toBe(1)
    expect(await s.metric('pod_identity_upstream_pace_per_second', { api: 'eks-auth' })).toBe(1)
    expect(await s.metric('pod_identity_upstream_queue_rejections_total')).toBe(1)
    // The pace allows the next call 1 s after the 429: the gate runs it with nobody waiting.
    s.clock.advance(999)
    expect(s.fetcher.count).toBe(1)
    s.clock.advance(1)
    expect(s.fetcher.count).toBe(2)
    s.fetcher.last().resolve(creds('paced', s.t0 + 6 * H))
    await flush()
    // The pod's retry is a hit: no further call.
    expect(s.cache.lookup(token, s.clock.now())?.body.toString()).toContain('ASIATESTpaced')
    expect(s.fetcher.count).toBe(2)
    expect(await s.metric('pod_identity_cache_state', { state: 'miss' })).toBe(1)
  })

  it('a request joining a queued call waits when it should start within the hold time, else is answered at once', async () => {
    const s = setup({ queueHoldMs: 700 })
    const token = tok('joined')
    await throttledOnce(s, token)
    // eta 1000 ms > 700 ms: answered at once, nothing more sent
    const early = await s.cache
      .resolve(tokenScope({ token: token, claims: s.claims() }))
      .catch((e: unknown) => e as AgentError)
    expect((early as AgentError).code).toBe('UpstreamThrottled')
    expect(await s.metric('pod_identity_cache_singleflight_waits_total')).toBe(1)
    s.clock.advance(400)
    // eta 600 ms <= 700 ms: held until the call runs and answers
    let served: unknown
    const held = s.cache
      .resolve(tokenScope({ token: token, claims: s.claims() }))
      .then((e) => (served = e))
    s.clock.advance(600)
    expect(s.fetcher.count).toBe(2)
    await flush()
    expect(served).toBeUndefined()
    s.fetcher.last().resolve(creds('held', s.t0 + 6 * H))
    await held
    expect((served as { body: Buffer }).body.toString()).toContain('ASIATESTheld')
    expect(await s.metric('pod_identity_upstream_queue_rejections_total')).toBe(2)
  })

  it('a held request whose call is throttled again gets 503 at once, with the new wait', async () => {
    const s = setup()
    const token = tok('twice')
    await throttledOnce(s, token)
    s.clock.advance(500)
    const p = s.cache
      .resolve(tokenScope({ token: token, claims: s.claims() }))
      .catch((e: unknown) => e as AgentError)
    s.clock.advance(500) // the paced call starts
    expect(s.fetcher.count).toBe(2)
    s.fetcher.last().reject(upstream('ThrottlingException', 429)) // started after the cut: cut again
    const err = (await p) as AgentError
    expect(err.code).toBe('UpstreamThrottled')
    expect(await s.metric('pod_identity_upstream_queue_length', { api: 'eks-auth' })).toBe(1)
    // The rate stays at its floor of 1 call/s: the next paced start is 1 s away.
    expect(err.retryAfterSeconds).toBe(1)
    expect(await s.metric('pod_identity_upstream_pace_per_second', { api: 'eks-auth' })).toBe(1)
  })

  it('while EKS Auth is not throttling, a request waits for a free slot however long it takes', async () => {
    const s = setup({ queueHoldMs: 300, initialUpstreamWindow: 1 })
    const first = s.cache.resolve(tokenScope({ token: tok('slow'), claims: s.claims() }))
    // window 1 is taken, gate open: the second call waits for a slot, and its request with it
    let served: unknown
    let failed: unknown
    s.cache.resolve(tokenScope({ token: tok('behind'), claims: s.claims() })).then(
      (e) => (served = e),
      (e: unknown) => (failed = e),
    )
    s.clock.advance(1000) // more than three hold times
    await flush()
    expect(failed).toBeUndefined()
    expect(served).toBeUndefined()
    expect(s.fetcher.count).toBe(1)
    s.fetcher.last().resolve(creds('slow', s.t0 + 6 * H))
    await first
    s.clock.advance(1) // the gate starts the queued call on its next turn
    expect(s.fetcher.count).toBe(2)
    s.fetcher.last().resolve(creds('behind', s.t0 + 6 * H))
    await flush()
    expect(failed).toBeUndefined()
    expect((served as { body: Buffer }).body.toString()).toContain('ASIATESTbehind')
    expect(await s.metric('pod_identity_upstream_queue_rejections_total')).toBe(0)
  })

  it('a request waiting past its hold time for a slot gets 503 as soon as the gate starts pacing', async () => {
    const s = setup({ queueHoldMs: 300, initialUpstreamWindow: 1 })
    const first = s.cache
      .resolve(tokenScope({ token: tok('slow'), claims: s.claims() }))
      .catch((e: unknown) => e as AgentError)
    const second = s.cache
      .resolve(tokenScope({ token: tok('behind'), claims: s.claims() }))
      .catch((e: unknown) => e as AgentError)
    s.clock.advance(1000)
    s.fetcher.last().reject(upstream('ThrottlingException', 429)) // the gate paces from here
    expect(((await first) as AgentError).code).toBe('UpstreamThrottled')
    // no clock advance: the switch to pacing answers the waiting request at once
    const err = (await second) as AgentError
    expect(err.code).toBe('UpstreamThrottled')
    expect(err.statusCode).toBe(503)
    expect(err.retryAfterSeconds).toBeGreaterThanOrEqual(1)
    expect(await s.metric('pod_identity_upstream_queue_length', { api: 'eks-auth' })).toBe(2) // both calls stay queued
    expect(await s.metric('pod_identity_upstream_queue_rejections_total')).toBe(2)
  })
})

describe('CredentialCache logs', () => {
  it('logs fetches at trace level with a token digest, never the token or the secrets', async () => {
    const s = setup()
    const token = tok('logs')
    await prime(s, token, creds('log', s.t0 + 6 * H))
    const lines = s.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>)
    const fetched = lines.find((l) => l.event === 'credentials_fetched')
    expect(fetched).toMatchObject({
      tokenDigest: tokenDigest(token),
      namespace: 'default',
      serviceAccount: 'app',
      pod: 'app-7d4b9c-xk2p1',
      reason: 'request',
    })
    const p = s.cache.resolve(tokenScope({ token: tok('logs-fail'), claims: s.claims() }))
    s.fetcher.last().reject(upstream('AccessDeniedException', 400))
    await p.catch(() => undefined)
    expect(s.logs.lines.some((l) => l.includes('credentials_fetch_failed'))).toBe(true)
    expect(s.logs.leaking(secrets)).toEqual([])
  })
})

describe('CredentialCache remembered refusals (--negative-cache-ttl)', () => {
  async function refuse(s: Setup, token: string, err: UpstreamError): Promise<unknown> {
    const p = s.cache.resolve(tokenScope({ token, claims: s.claims() }))
    s.fetcher.last().reject(err)
    return p.catch((e: unknown) => e)
  }

  it("answers an upstream's final refusal of a token again, without a call, for the window", async () => {
    const s = setup({ refusalTtlMs: 5000 })
    const token = tok('refused')
    const first = await refuse(s, token, upstream('ResourceNotFoundException', 404))
    expect(s.cache.refusal(token, s.clock.now())).toBe(first)
    s.clock.advance(4999)
    expect(s.cache.refusal(token, s.clock.now())).toBe(first)
    expect(await s.metric('pod_identity_cache_refusals_replayed_total')).toBe(2)
    expect(s.cache.refusal(tok('other'), s.clock.now())).toBeUndefined()
    s.clock.advance(1)
    expect(s.cache.refusal(token, s.clock.now())).toBeUndefined()
    expect(s.fetcher.count).toBe(1)
    // After the window a new call is made, and an association created meanwhile is picked up.
    const p = s.cache.resolve(tokenScope({ token, claims: s.claims() }))
    s.fetcher.last().resolve(creds('associated', s.t0 + 6 * H))
    expect((await p).body.toString()).toContain('ASIATESTassociated')
  })

  it.each([
    ['InvalidTokenException', 400],
    ['ExpiredTokenException', 400],
    ['AccessDeniedException', 400],
    ['InvalidParameterException', 400],
    ['InvalidRequestException', 400],
  ])('remembers %s', async (code, status) => {
    const s = setup({ refusalTtlMs: 5000 })
    const token = tok(code)
    await refuse(s, token, upstream(code, status))
    expect(s.cache.refusal(token, s.clock.now())?.code).toBe(code)
  })

  it('never remembers what can heal (throttling, 5xx, timeouts), nor anything when the window is 0', async () => {
    const s = setup({ refusalTtlMs: 5000 })
    for (const [code, status] of [
      ['InternalServerException', 500],
      ['ServiceUnavailableException', 503],
    ] as const) {
      const token = tok(code)
      await refuse(s, token, upstream(code, status))
      expect(s.cache.refusal(token, s.clock.now())).toBeUndefined()
    }
    const off = setup()
    const token = tok('off')
    await refuse(off, token, upstream('InvalidTokenException', 400))
    expect(off.cache.refusal(token, off.clock.now())).toBeUndefined()
  })

  it('a renewal refused for good is remembered too, and the entry is evicted', async () => {
    const s = setup({ refusalTtlMs: 5000, maxRetentionMs: 1 * H })
    const token = tok('renewal-refused')
    await prime(s, token, creds('r', s.t0 + 6 * H))
    s.clock.advance(1 * H)
    expect(s.cache.lookup(token, s.clock.now())).toBeDefined() // starts the renewal
    s.fetcher.last().reject(upstream('AccessDeniedException', 400))
    await flush()
    await flush()
    expect(s.cache.lookup(token, s.clock.now())).toBeUndefined()
    expect(s.cache.refusal(token, s.clock.now())?.code).toBe('AccessDeniedException')
  })
})

describe('CredentialCache, a pod flooding a throttling EKS Auth with forged tokens', () => {
  /**
   * EKS Auth on the manual clock: `rate` calls/s (burst as many), 20 ms latency; refuses forged
   * tokens (InvalidTokenException) and answers others with credentials.
   */
  function throttlingEksAuth(
    clock: ManualClock,
    rate: number,
  ): CredentialSource & { calls: number } {
    const quota = new TokenBucket({ clock, ratePerSecond: rate, burst: rate })
    const source = {
      calls: 0,
      fetch(request: CheckedToken): Promise<SourceAnswer> {
        source.calls++
        const ok = quota.tryTake()
        return new Promise((resolve, reject) => {
          clock.setTimer(() => {
            if (!ok) reject(upstream('ThrottlingException', 429))
            else if (request.token.includes('forged'))
              reject(upstream('InvalidTokenException', 400))
            else resolve(podCredentials('pod', clock.now() + 6 * H))
          }, 20)
        })
      },
      warmUp: () => Promise.resolve(),
      close: () => Promise.resolve(),
    }
    return source
  }

  it.each([100, 5])(
    'at %d calls/s: 2000 forged tokens from one source in 0.83 s leave a new pod served within 2 s, and the queue empties once nobody waits',
    async (rate) => {
      const clock = new ManualClock()
      const registry = new Registry()
      const metrics = createMetrics({ registry, version: 'test', processMetrics: false })
      const upstreamSource = throttlingEksAuth(clock, rate)
      const logs = logLines()
      sinks.push(logs)
      const cache = new CredentialCache({
        source: gated(upstreamSource, { clock, metrics, api: 'eks-auth' }),
        clock,
        metrics,
        logger: createLogger('info', logs),
        maxEntries: 2000,
        maxRetentionMs: 3 * H,
        refreshQps: 3,
        refusalTtlMs: 5000,
      })
      const claims: TokenClaims = {
        expMs: clock.now() + 24 * H,
        nbfMs: -Infinity,
        namespace: 'default',
        serviceAccount: 'app',
        podName: 'p',
        podUid: 'u',
      }
      const flood: Promise<unknown>[] = []
      for (let i = 0; i < 2000; i++) {
        const token = tok(`forged-${i}`)
        flood.push(
          cache
            .resolve(tokenScope({ token, claims }), { requester: '10.0.0.66' })
            .catch((e: unknown) => e),
        )
        if (i % 24 === 23) {
          clock.advance(10) // 2000 requests in 0.83 s
          await flush()
        }
      }
      const t = clock.now()
      let servedAt: number | undefined
      const pod = cache
        .resolve(tokenScope({ token: tok('new-pod'), claims }), { requester: '10.0.0.7' })
        .then(
          (e) => ((servedAt = clock.now()), e),
          (e: unknown) => e,
        )
      await runFor(clock, 2000, 10)
      expect(servedAt).toBeDefined()
      expect((servedAt as number) - t).toBeLessThanOrEqual(2000)
      expect(((await pod) as CacheEntry).body.toString()).toContain('ASIATESTpod')
      // Every flood request got an answer (a refusal, or a 503 while its call was queued).
      const outcomes = (await Promise.all(flood)) as AgentError[]
      expect(outcomes.every((e) => e instanceof AgentError)).toBe(true)
      // Nobody waits for the queued forged calls: they are dropped, unmade, within seconds.
      await runFor(clock, 8000, 50)
      expect(await metricOf(registry, 'pod_identity_upstream_queue_length')).toBe(0)
      // Each forged request was called, dropped unmade, or refused at once because its source
      // already had 32 calls queued (429 TooManyRequests).
      const dropped = await metricOf(registry, 'pod_identity_upstream_calls_dropped_total')
      const refused = await metricOf(registry, 'pod_identity_requests_limited_total')
      const codes = outcomes.map((e) => e.code)
      expect(codes.filter((c) => c === 'TooManyRequests')).toHaveLength(refused)
      expect(refused).toBeGreaterThan(1000)
      if (rate === 5) expect(dropped).toBeGreaterThan(0) // at 5/s its queued calls outlast their 503s
      expect(upstreamSource.calls + dropped + refused).toBeGreaterThanOrEqual(2001)
    },
  )
})

async function metricOf(registry: Registry, name: string): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name)
  return m?.values[0]?.value ?? NaN
}
