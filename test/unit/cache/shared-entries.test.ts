// Entries per pod and per association (tokens verified on the node), on a ManualClock with a
// source the test answers by hand: rotation, sharing, renewal with the newest token, a changed
// role replacing the entry for every token, a final refusal of the association dropping it for
// all, and a refusal of the renewing token alone handing renewals to another token.

import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { CredentialCache } from '../../../src/cache/credential-cache.js'
import type { ScopedRequest } from '../../../src/cache/entry-scope.js'
import { entryScope } from '../../../src/cache/entry-scope.js'
import { UpstreamError } from '../../../src/errors.js'
import { createMetrics } from '../../../src/metrics/metrics.js'
import type { TokenClaims } from '../../../src/token/parse-token.js'
import type { CheckedToken } from '../../../src/token/validity.js'
import type { VerifiedPod } from '../../../src/token/verify-token.js'
import { ManualClock } from '../../../src/util/clock.js'
import { createLogger } from '../../../src/util/logger.js'
import { DeferredSource, flush, podCredentials } from '../../helpers/deferred-source.js'
import { logLines } from '../../helpers/log-lines.js'

const H = 3_600_000

function setup(share: 'per-pod' | 'per-association', verified = true) {
  const clock = new ManualClock()
  const source = new DeferredSource()
  const registry = new Registry()
  const metrics = createMetrics({ registry, version: 'test', processMetrics: false })
  const logs = logLines()
  const cache = new CredentialCache({
    source,
    clock,
    metrics,
    logger: createLogger('debug', logs),
    maxEntries: 100,
    maxRetentionMs: 3 * H,
    refreshQps: 100,
    random: () => 0.5,
  })
  // A verifier that trusts the claims: what TokenVerifier returns for a good token.
  const verifier = {
    verify: (r: CheckedToken): Promise<VerifiedPod | undefined> =>
      Promise.resolve(
        verified
          ? {
              namespace: r.claims.namespace as string,
              serviceAccount: r.claims.serviceAccount as string,
              podName: r.claims.podName,
              podUid: r.claims.podUid as string,
            }
          : undefined,
      ),
  }
  const scope = entryScope({ verifier, share, clusterName: 'c1' })
  let n = 0
  const token = (pod: string, over: Partial<TokenClaims> = {}): CheckedToken => ({
    token: `eyJhbGciOiJSUzI1NiJ9.${pod}-${++n}.sig${n}`,
    claims: {
      expMs: clock.now() + 24 * H,
      nbfMs: -Infinity,
      namespace: 'default',
      serviceAccount: 'app',
      podName: pod,
      podUid: `uid-${pod}`,
      ...over,
    },
  })
  const counter = async (name: string, reason: string) =>
    (await registry.getSingleMetric(name)?.get())?.values.find((v) => v.labels.reason === reason)
      ?.value ?? 0
  return { clock, source, cache, scope, token, logs, counter }
}

type S = ReturnType<typeof setup>

async function served(s: S, t: CheckedToken): Promise<string> {
  const scoped: ScopedRequest = await s.scope(t)
  const p = s.cache.resolve(scoped)
  await flush()
  const entry = await p
  return entry.body.toString()
}

/** `t` misses, and the source answers the call it starts with credentials for 6 h. */
async function fetched(s: S, t: CheckedToken): Promise<void> {
  const p = s.cache.resolve(await s.scope(t))
  s.source.last().resolve(podCredentials(1, s.clock.now() + 6 * H))
  await p
}

describe('per-pod entries', () => {
  it("a rotated token is served the pod's entry at once, with no call, and hits from then on", async () => {
    const s = setup('per-pod')
    const first = s.token('web')
    await fetched(s, first)
    const rotated = s.token('web')
    expect(await served(s, rotated)).toContain('ASIATEST1')
    expect(s.source.count).toBe(1)
    expect(s.cache.lookup(rotated.token, s.clock.now())?.body.toString()).toContain('ASIATEST1')
    expect(await s.counter('pod_identity_upstream_calls_saved_total', 'rotation')).toBe(1)
    expect(await s.counter('pod_identity_cache_reused_answers_total', 'rotation')).toBe(2)
    expect(s.logs.lines.some((l) => l.includes('"event":"credentials_kept_across_rotation"'))).toBe(
      true,
    )
    // another pod of the same service account is another entry
    const other = s.cache.resolve(await s.scope(s.token('api')))
    expect(s.source.count).toBe(2)
    s.source.last().resolve(podCredentials(2, s.clock.now() + 6 * H))
    expect((await other).body.toString()).toContain('ASIATEST2')
  })

  it('renewals send the newest token seen for the pod', async () => {
    const s = setup('per-pod')
    const first = s.token('web', { expMs: s.clock.now() + 2 * H })
    await fetched(s, first)
    const rotated = s.token('web', { expMs: s.clock.now() + 24 * H })
    await served(s, rotated)
    s.clock.advance(3.1 * H) // past the renewal time (half of 6 h, with jitter 1.0)
    expect(s.cache.lookup(rotated.token, s.clock.now())).toBeDefined()
    expect(s.source.count).toBe(2)
    expect(s.source.last().token).toBe(rotated.token)
  })

  it('an unverified token never reads the pod entry: it is its own', async () => {
    const s = setup('per-pod', false)
    await fetched(s, s.token('web'))
    void s.cache.resolve(await s.scope(s.token('web')))
    expect(s.source.count).toBe(2)
  })
})

/** Pods x and y share an entry x fetched; a hit past its renewal time has started the renewal. */
async function renewingShared(): Promise<{ s: S; x: CheckedToken; y: CheckedToken }> {
  const s = setup('per-association')
  const x = s.token('x')
  const y = s.token('y')
  await fetched(s, x)
  await served(s, y)
  s.clock.advance(3.1 * H)
  s.cache.lookup(y.token, s.clock.now())
  expect(s.source.count).toBe(2)
  return { s, x, y }
}

describe('per-association entries', () => {
  it('pods arriving while the first call is in flight join it; later pods are served from it', async () => {
    const s = setup('per-association')
    const a = s.cache.resolve(await s.scope(s.token('job-a')))
    const b = s.cache.resolve(await s.scope(s.token('job-b')))
    expect(s.source.count).toBe(1)
    s.source.last().resolve(podCredentials(1, s.clock.now() + 6 * H))
    expect((await a).body).toBe((await b).body)
    expect(await served(s, s.token('job-c'))).toContain('ASIATEST1')
    expect(s.source.count).toBe(1)
    expect(await s.counter('pod_identity_upstream_calls_saved_total', 'shared')).toBe(2)
    // another service account is another association
    void s.cache.resolve(await s.scope(s.token('w', { serviceAccount: 'worker' })))
    expect(s.source.count).toBe(2)
  })

  it('a renewal naming another role replaces the entry for every pod that shares it', async () => {
    const { s, x, y } = await renewingShared()
    const moved = podCredentials(2, s.clock.now() + 6 * H)
    moved.credentials.assumedRoleArn = 'arn:aws:sts::111122223333:assumed-role/NewRole/eks-x'
    moved.association.id = 'a-new0002'
    s.source.last().resolve(moved)
    await flush()
    expect(s.cache.lookup(x.token, s.clock.now())?.body.toString()).toContain('ASIATEST2')
    expect(s.cache.lookup(y.token, s.clock.now())?.body.toString()).toContain('ASIATEST2')
    const changed = s.logs.lines.filter((l) => l.includes('"event":"association_changed"'))
    expect(changed).toHaveLength(1)
    expect(changed[0]).toContain('111122223333:NewRole')
  })

  it('a renewal refused for the association drops the entry for every pod; the next pod fetches anew', async () => {
    const { s, x, y } = await renewingShared()
    s.source.last().reject(refusal('ResourceNotFoundException', 404))
    await flush()
    expect(s.cache.lookup(x.token, s.clock.now())).toBeUndefined()
    expect(s.cache.lookup(y.token, s.clock.now())).toBeUndefined()
    expect(s.cache.size).toBe(0)
    void s.cache.resolve(await s.scope(s.token('z')))
    expect(s.source.count).toBe(3)
  })

  it("a renewal refused for its token alone (its pod deleted) keeps the credentials, renewed with another pod's token", async () => {
    const { s, x, y } = await renewingShared()
    expect(s.source.last().token).toBe(y.token) // the newest token bound
    s.source.last().reject(refusal('InvalidTokenException', 400))
    await flush()
    // x is still served, with no call, and y's token is no longer bound
    expect(s.cache.lookup(x.token, s.clock.now())?.body.toString()).toContain('ASIATEST1')
    expect(s.cache.lookup(y.token, s.clock.now())).toBeUndefined()
    const said = s.logs.lines.filter((l) => l.includes('"event":"renewal_token_refused"'))
    expect(said).toHaveLength(1)
    expect(said[0]).toContain('"pod":"y"')
    expect(said[0]).toContain('"next":{"pod":"x"')
    // x's next hit renews at once, with x's own token
    expect(s.source.count).toBe(3)
    expect(s.source.last().token).toBe(x.token)
    s.source.last().resolve(podCredentials(2, s.clock.now() + 6 * H))
    await flush()
    expect(s.cache.lookup(x.token, s.clock.now())?.body.toString()).toContain('ASIATEST2')
    expect(s.cache.size).toBe(1)
  })

  it('a token-only refusal with no other usable token bound drops the entry', async () => {
    const s = setup('per-pod')
    const only = s.token('web')
    await fetched(s, only)
    s.clock.advance(3.1 * H)
    s.cache.lookup(only.token, s.clock.now())
    s.source.last().reject(refusal('ExpiredTokenException', 400))
    await flush()
    expect(s.cache.lookup(only.token, s.clock.now())).toBeUndefined()
    expect(s.cache.size).toBe(0)
    expect(s.logs.lines.some((l) => l.includes('"event":"cache_evicted"'))).toBe(true)
  })
})

function refusal(code: string, statusCode: number): UpstreamError {
  return new UpstreamError({
    statusCode,
    code,
    message: 'refused',
    requestId: 'r',
    irrecoverable: true,
  })
}
