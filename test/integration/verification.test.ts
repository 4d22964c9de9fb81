// Tokens verified on the node (--token-jwks) against a key set the test serves over HTTP, on the
// real agent with the mock EKS Auth and the mock STS, through fromHttp and botocore: what a pod
// is answered, what reaches the upstream (the mocks' call counts), and the metrics.

import { SignJWT, importJWK } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import { fromHttp } from '@aws-sdk/credential-provider-http'
import type { ServerConfig } from '../../src/config/server-config.js'
import { DEFAULT_ISSUER, TokenIssuer } from '../../src/mock/token-issuer.js'
import { botocore } from '../helpers/botocore.js'
import type { Harness, HarnessOptions } from '../helpers/harness.js'
import { metricValue, rawGet, startHarness } from '../helpers/harness.js'
import { asPod, podAddress } from '../helpers/pod-source.js'
import { until } from '../helpers/until.js'

type SdkError = Error & { Code?: string; Message?: string }

let h: Harness | undefined
afterEach(async () => {
  await h?.close()
  h = undefined
})

async function harness(config: Partial<ServerConfig>, o: HarnessOptions = {}): Promise<Harness> {
  h = await startHarness({ verify: true, config, ...o })
  return h
}

function get(h: Harness, token: string) {
  return rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token })
}

async function metric(h: Harness, series: string): Promise<number> {
  return metricValue(await h.metricsText(), series) ?? 0
}

/** `pods` pods of default/app boot at once, each from its own address, through fromHttp. */
async function boot(h: Harness, pods: number): Promise<string[]> {
  const files = await Promise.all(
    Array.from({ length: pods }, async (_, i) =>
      h.tokenFile(
        await h.mint({
          podName: `job-${i}`,
          podUid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        }),
      ),
    ),
  )
  const creds = await Promise.all(
    files.map((file, i) =>
      asPod(podAddress(i), () =>
        fromHttp({
          awsContainerCredentialsFullUri: h.url,
          awsContainerAuthorizationTokenFile: file,
          maxRetries: 5,
          timeout: 5000,
        })(),
      ),
    ),
  )
  return creds.map((c) => c.accessKeyId)
}

describe('a job burst: pods of one service account starting at once', () => {
  it('--share-credentials per-association: 250 pods cost exactly 1 EKS Auth call, all joining it', async () => {
    const h = await harness({ shareCredentials: 'per-association', clientMissRate: 0 })
    h.mock.setFaults({ latencyMs: 300 }) // every pod arrives while the one call is in flight
    const keys = await boot(h, 250)
    expect(h.mock.stats.requests).toBe(1)
    expect(new Set(keys).size).toBe(1)
    expect(await metric(h, 'pod_identity_local_validation_total{result="accepted"}')).toBe(250)
    expect(await metric(h, 'pod_identity_upstream_calls_saved_total{reason="shared"}')).toBe(249)
    expect(await metric(h, 'pod_identity_cache_entries')).toBe(1)
    // the credentials name the first pod's token; the others were served from them (debug log)
    const fetched = h.logs.filter((l) => l.includes('"event":"credentials_fetched"'))
    expect(fetched).toHaveLength(1)
    expect(fetched[0]).toContain('"entry":"association"')
    expect(h.logs.filter((l) => l.includes('"event":"credentials_shared"'))).toHaveLength(249)
  })

  it('per-pod (the default, sharing off): the same 250 pods cost 250 calls', async () => {
    const h = await harness({ clientMissRate: 0 })
    const keys = await boot(h, 250)
    expect(h.mock.stats.requests).toBe(250)
    expect(new Set(keys).size).toBe(250)
    expect(await metric(h, 'pod_identity_upstream_calls_saved_total{reason="shared"}')).toBe(0)
  })

  it('per-association with the STS source: keyed by the role too, 1 STS call for 40 pods', async () => {
    const h = await harness(
      {
        shareCredentials: 'per-association',
        credentialSource: 'sts',
        clusterName: undefined,
        clientMissRate: 0,
      },
      { sts: true },
    )
    const keys = await boot(h, 40)
    expect(h.sts!.stats.requests).toBe(1)
    expect(new Set(keys).size).toBe(1)
    expect(h.mock.stats.requests).toBe(0)
  })
})

describe('tokens verification refuses: 400, no upstream call, never shared credentials', () => {
  it('another key, issuer, audience; no pod claim; another service account gets its own', async () => {
    const h = await harness({ shareCredentials: 'per-association', clientMissRate: 0 })
    const good = await get(h, await h.mint({ podName: 'a' }))
    expect(good.status).toBe(200)
    const shared = JSON.parse(good.body) as { AccessKeyId: string }
    expect(h.mock.stats.requests).toBe(1)

    const stranger = await TokenIssuer.generate()
    const forgedKid = await TokenIssuer.fromPrivateJwk({
      ...(await TokenIssuer.generate()).exportPrivateJwk(),
      kid: h.issuer.kid, // claims the real key's id
    })
    const cases: [string, string, string][] = [
      [
        await stranger.mint({ namespace: 'default', serviceAccount: 'app' }),
        'InvalidTokenSignature',
        'unknown_key',
      ],
      [
        await forgedKid.mint({ namespace: 'default', serviceAccount: 'app' }),
        'InvalidTokenSignature',
        'bad_signature',
      ],
      [await h.mint({ issuer: 'https://evil.example' }), 'InvalidTokenIssuer', 'wrong_issuer'],
      [await h.mint({ audience: 'sts.amazonaws.com' }), 'InvalidTokenAudience', 'wrong_audience'],
      [await notPodBound(h.issuer), 'TokenNotBoundToPod', 'not_pod_bound'],
    ]
    for (const [token, code, result] of cases) {
      const r = await get(h, token)
      expect(r.status, code).toBe(400)
      expect(r.headers['content-type']).toBe('application/json')
      expect((JSON.parse(r.body) as { Code: string }).Code).toBe(code)
      expect(r.body).not.toContain(shared.AccessKeyId)
      expect(
        await metric(h, `pod_identity_local_validation_total{result="${result}"}`),
        result,
      ).toBe(1)
      // the SDK sees the same answer
      const err = (await h.sdkFetch(await h.tokenFile(token)).catch((e: unknown) => e)) as SdkError
      expect(err.Code).toBe(code)
    }
    expect(h.mock.stats.requests).toBe(1)

    // a valid token of another service account is its own association: its own role
    const other = await get(h, await h.mint({ namespace: 'team-b', serviceAccount: 'worker' }))
    expect(other.status).toBe(200)
    const otherCreds = JSON.parse(other.body) as { AccessKeyId: string; AccountId: string }
    expect(otherCreds.AccessKeyId).not.toBe(shared.AccessKeyId)
    expect(otherCreds.AccountId).toBe('444455556666')
    expect(h.mock.stats.requests).toBe(2)
  })
})

describe('a flood of forged tokens from one pod', () => {
  it('costs a signature check only within its miss budget, then 429 before verifying', async () => {
    // 1 per second, burst 2: however slow this machine, the budget refills by one a second
    const h = await harness({ clientMissRate: 1 })
    const forger = await TokenIssuer.fromPrivateJwk({
      ...(await TokenIssuer.generate()).exportPrivateJwk(),
      kid: h.issuer.kid,
    })
    const tokens = await Promise.all(
      Array.from({ length: 30 }, () =>
        forger.mint({ namespace: 'default', serviceAccount: 'app' }),
      ),
    )
    const t0 = performance.now()
    const statuses: number[] = []
    for (const token of tokens) statuses.push((await get(h, token)).status)
    const seconds = (performance.now() - t0) / 1000
    const refused = statuses.filter((s) => s === 400).length
    expect(statuses.slice(0, 2)).toEqual([400, 400])
    expect(refused).toBeLessThanOrEqual(2 + Math.ceil(seconds))
    expect(refused + statuses.filter((s) => s === 429).length).toBe(30)
    const verified = await metric(h, 'pod_identity_local_validation_total{result="bad_signature"}')
    expect(verified).toBe(refused) // a 429 costs no signature check
    expect(await metric(h, 'pod_identity_requests_limited_total{reason="miss_rate"}')).toBe(
      30 - refused,
    )
    expect(h.mock.stats.requests).toBe(0)
    // another pod (its own address) is not affected
    const file = await h.tokenFile(await h.mint({ podName: 'neighbour' }))
    const other = await asPod(podAddress(7), () => h.sdkFetch(file))
    expect(other.accessKeyId).toMatch(/^ASIA/)
  })
})

describe('token rotation (per-pod, the default)', () => {
  it("a rotated token keeps the pod's credentials with no upstream call, even with EKS Auth down", async () => {
    const h = await harness({})
    const podUid = '6a1d8f7e-0000-4000-8000-000000000001'
    const first = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'web', podUid })))
    expect(h.mock.stats.requests).toBe(1)
    h.mock.setFaults({ down: true })
    const rotated = await h.tokenFile(await h.mint({ podName: 'web', podUid }))
    const again = await h.sdkFetch(rotated)
    expect(again.accessKeyId).toBe(first.accessKeyId)
    const py = await botocore(h.url, await h.tokenFile(await h.mint({ podName: 'web', podUid })))
    expect(py.error).toBeUndefined()
    expect(py.access_key).toBe(first.accessKeyId)
    expect(h.mock.stats.requests).toBe(1)
    expect(await metric(h, 'pod_identity_upstream_calls_saved_total{reason="rotation"}')).toBe(2)
    expect(await metric(h, 'pod_identity_cache_reused_answers_total{reason="rotation"}')).toBe(2)
    // another pod of the same service account is not that pod: it needs EKS Auth
    const stranger = await h
      .sdkFetch(await h.tokenFile(await h.mint({ podName: 'other' })))
      .catch((e: unknown) => e)
    expect(stranger).toBeInstanceOf(Error)
  })
})

describe('a pod of a shared association deleted', () => {
  it("the others keep being served; renewals pass to a live pod's token", async () => {
    const h = await harness({ shareCredentials: 'per-association', maxCredentialRetentionMs: 300 })
    const a = await h.mint({ podName: 'a', podUid: '6a1d8f7e-0000-4000-8000-00000000000a' })
    const first = await h.sdkFetch(await h.tokenFile(a))
    // b's token is the newest one bound, so renewals send it
    const bUid = '6a1d8f7e-0000-4000-8000-00000000000b'
    await new Promise((r) => setTimeout(r, 1100)) // a later `exp` (whole seconds)
    const b = await h.mint({ podName: 'b', podUid: bUid })
    expect((await h.sdkFetch(await h.tokenFile(b))).accessKeyId).toBe(first.accessKeyId)
    h.mock.deletePod(bUid)
    const statuses = new Set<number>()
    const renewed = () => {
      const refusedAt = h.logs.findIndex((l) => l.includes('"event":"renewal_token_refused"'))
      return (
        refusedAt >= 0 &&
        h.logs
          .slice(refusedAt)
          .some((l) => l.includes('"event":"credentials_fetched","reason":"refresh"'))
      )
    }
    await until(async () => {
      statuses.add((await get(h, a)).status)
      return renewed()
    }, "b's token refused, then a renewal with a's token")
    expect([...statuses]).toEqual([200]) // a was answered throughout, never made to wait on a call
    const refused = h.logs.filter((l) => l.includes('"event":"renewal_token_refused"'))
    expect(refused).toHaveLength(1)
    expect(refused[0]).toContain('"pod":"b"')
    expect(refused[0]).toContain('"next":{"pod":"a"')
    expect(h.logs.some((l) => l.includes('"event":"cache_evicted"'))).toBe(false)
    expect((await h.sdkFetch(await h.tokenFile(a))).accessKeyId).toMatch(/^ASIA/)
  })
})

describe('the key set', () => {
  it('unreachable: tokens are served per token, judged upstream, never shared; said once; verified again once it answers', async () => {
    const h = await harness({ shareCredentials: 'per-association', clientMissRate: 0 })
    h.jwks!.setFailing(true)
    const podUid = '6a1d8f7e-0000-4000-8000-000000000002'
    const a1 = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'a', podUid })))
    const a2 = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'a', podUid })))
    const b = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'b' })))
    expect(new Set([a1.accessKeyId, a2.accessKeyId, b.accessKeyId]).size).toBe(3)
    expect(h.mock.stats.requests).toBe(3)
    expect(await metric(h, 'pod_identity_local_validation_total{result="keys_unavailable"}')).toBe(
      3,
    )
    expect(
      h.logs.filter((l) => l.includes('"event":"token_verification_unavailable"')),
    ).toHaveLength(1)
    // a bad token is still refused upstream (EKS Auth judges it), not by the agent
    const forged = await (
      await TokenIssuer.generate()
    ).mint({ namespace: 'default', serviceAccount: 'app' })
    expect((await get(h, forged)).status).toBe(400)
    expect(h.mock.stats.requests).toBe(4)

    // once the key set answers again (fetched in the background), tokens are verified and shared
    h.jwks!.setFailing(false)
    let n = 0
    await until(async () => {
      await get(h, await h.mint({ podName: `retry-${n++}` }))
      return (await metric(h, 'pod_identity_local_validation_total{result="accepted"}')) > 0
    }, 'tokens verified again')
    const c = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'c' })))
    const calls = h.mock.stats.requests
    const d = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'd' })))
    expect(d.accessKeyId).toBe(c.accessKeyId) // verified again: shared
    expect(h.mock.stats.requests).toBe(calls)
    expect(h.logs.filter((l) => l.includes('"event":"token_verification_available"'))).toHaveLength(
      1,
    )
  })

  it('a new kid is picked up without a restart', async () => {
    const first = await TokenIssuer.generate()
    const next = await TokenIssuer.generate('ES256')
    // EKS Auth knows both keys (the cluster rotated its signing key); the node's copy is older
    const both = { keys: [...first.publicJwks().keys, ...next.publicJwks().keys] }
    const h = await harness({}, { issuer: first, mock: { jwks: both } })
    await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'old' })))
    const fetches = h.jwks!.fetches
    h.jwks!.setKeys(both)
    const token = await next.mint({
      namespace: 'default',
      serviceAccount: 'app',
      issuer: DEFAULT_ISSUER,
    })
    const creds = await h.sdkFetch(await h.tokenFile(token))
    expect(creds.accessKeyId).toMatch(/^ASIA/)
    expect(h.jwks!.fetches).toBeGreaterThan(fetches)
    expect(await metric(h, 'pod_identity_local_validation_total{result="accepted"}')).toBe(2)
    await until(async () => (await get(h, token)).status === 200, 'a hit for the new key')
  })

  it('a key file works for air-gapped nodes, and a key added to it is picked up', async () => {
    const { writeFile, mkdtemp } = await import('node:fs/promises')
    const { join } = await import('node:path')
    const { tmpdir } = await import('node:os')
    const dir = await mkdtemp(join(tmpdir(), 'pia-jwks-'))
    const file = join(dir, 'jwks.json')
    const issuer = await TokenIssuer.generate()
    const next = await TokenIssuer.generate()
    await writeFile(file, JSON.stringify(issuer.publicJwks()))
    h = await startHarness({
      config: { tokenJwks: file, tokenIssuer: DEFAULT_ISSUER },
      mock: { jwks: { keys: [...issuer.publicJwks().keys, ...next.publicJwks().keys] } },
    })
    const mint = (i: TokenIssuer) => i.mint({ namespace: 'default', serviceAccount: 'app' })
    expect((await get(h, await mint(issuer))).status).toBe(200)
    expect((await get(h, await mint(next))).status).toBe(400)
    await writeFile(
      file,
      JSON.stringify({ keys: [...issuer.publicJwks().keys, ...next.publicJwks().keys] }),
    )
    await until(async () => (await get(h!, await mint(next))).status === 200, 'the added key')
  })
})

/** A token signed by the issuer whose kubernetes.io claim names no pod (not bound to one). */
async function notPodBound(issuer: TokenIssuer): Promise<string> {
  const jwk = issuer.exportPrivateJwk()
  const key = await importJWK(jwk, issuer.alg)
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({
    'kubernetes.io': { namespace: 'default', serviceaccount: { name: 'app', uid: 'u' } },
  })
    .setProtectedHeader({ alg: issuer.alg, kid: issuer.kid })
    .setIssuer(DEFAULT_ISSUER)
    .setAudience('pods.eks.amazonaws.com')
    .setSubject('system:serviceaccount:default:app')
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(key)
}
