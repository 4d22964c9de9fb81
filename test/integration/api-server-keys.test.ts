// --token-jwks kubernetes: the API server's own key set, read over HTTPS as the agent's service
// account. The test plays the API server (the test cluster's certificate, 401 to any other bearer
// token) and the kubelet (KUBERNETES_SERVICE_HOST/PORT, the mounted token and CA), on the real
// agent with the mock EKS Auth, through fromHttp.

import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ServerConfig } from '../../src/config/server-config.js'
import { buildServerConfig } from '../../src/config/server-config.js'
import { ConfigError } from '../../src/config/values.js'
import { DEFAULT_ISSUER, TokenIssuer } from '../../src/mock/token-issuer.js'
import type { Harness } from '../helpers/harness.js'
import { metricValue, startHarness } from '../helpers/harness.js'
import { JwksServer, OTHER_CA, TEST_CA } from '../helpers/jwks-server.js'

let h: Harness | undefined
let apiServer: JwksServer | undefined
afterEach(async () => {
  await h?.close()
  await apiServer?.stop()
  h = undefined
  apiServer = undefined
})

/** The API server's keys, the kubelet's mount, and the agent configured as `--token-jwks kubernetes`. */
async function inCluster(o: { issuer: TokenIssuer; ca?: string; saToken?: string }) {
  const accepted = ['sa-token-1']
  apiServer = new JwksServer(o.issuer.publicJwks(), { apiServer: { tokens: () => accepted } })
  const { port } = new URL(await apiServer.start())
  const dir = await mkdtemp(join(tmpdir(), 'pia-sa-'))
  await writeFile(join(dir, 'ca.crt'), o.ca ?? TEST_CA)
  await writeFile(join(dir, 'token'), o.saToken ?? 'sa-token-1')
  const built = buildServerConfig(
    {
      clusterName: 'test-cluster',
      tokenJwks: 'kubernetes',
      tokenIssuer: DEFAULT_ISSUER,
      shareCredentials: 'per-association',
    },
    {
      AWS_REGION: 'us-west-2',
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: port,
    },
  )
  const config: Partial<ServerConfig> = {
    tokenJwks: built.tokenJwks,
    tokenIssuer: built.tokenIssuer,
    shareCredentials: built.shareCredentials,
    tokenJwksServiceAccountDir: dir, // the kubelet's mount, here a temporary directory
    clientMissRate: 0,
  }
  return { accepted, dir, config }
}

async function metric(h: Harness, series: string): Promise<number> {
  return metricValue(await h.metricsText(), series) ?? 0
}

describe('--token-jwks kubernetes', () => {
  it("verifies tokens with the API server's keys, read with the agent's token (the newest after the kubelet rotates it)", async () => {
    const issuer = await TokenIssuer.generate()
    const next = await TokenIssuer.generate('ES256')
    const both = { keys: [...issuer.publicJwks().keys, ...next.publicJwks().keys] }
    const { accepted, dir, config } = await inCluster({ issuer })
    h = await startHarness({ issuer, config, mock: { jwks: both } })

    const a = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'a' })))
    const b = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'b' })))
    expect(b.accessKeyId).toBe(a.accessKeyId) // verified, so shared per association
    expect(h.mock.stats.requests).toBe(1)
    expect(await metric(h, 'pod_identity_local_validation_total{result="accepted"}')).toBe(2)
    expect(apiServer!.authorizations.length).toBeGreaterThan(0)
    expect(new Set(apiServer!.authorizations)).toEqual(new Set(['Bearer sa-token-1']))

    // The kubelet rotates the agent's token (the API server now takes only the new one), and
    // the cluster signs with a new key: the agent fetches the keys again, with the new token.
    await writeFile(join(dir, 'token'), 'sa-token-2\n')
    accepted.splice(0, 1, 'sa-token-2')
    apiServer!.setKeys(both)
    const token = await next.mint({
      namespace: 'default',
      serviceAccount: 'app',
      issuer: DEFAULT_ISSUER,
    })
    const c = await h.sdkFetch(await h.tokenFile(token))
    expect(c.accessKeyId).toBe(a.accessKeyId)
    expect(apiServer!.authorizations.at(-1)).toBe('Bearer sa-token-2')
    expect(await metric(h, 'pod_identity_local_validation_total{result="accepted"}')).toBe(3)
    expect(h.logs.join('\n')).not.toContain('sa-token-')
    await rm(dir, { recursive: true })
  })

  it('a refused service-account token, or a certificate the cluster CA did not sign: served per token, and the log says why', async () => {
    for (const [setup, why] of [
      [
        { saToken: 'not-a-token' },
        "answered HTTP 401: the agent's service-account token was refused",
      ],
      [{ ca: OTHER_CA }, 'fetch failed (UNABLE_TO_VERIFY_LEAF_SIGNATURE)'],
    ] as const) {
      const issuer = await TokenIssuer.generate()
      const { dir, config } = await inCluster({ issuer, ...setup })
      h = await startHarness({ issuer, config })
      const a = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'a' })))
      const b = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'b' })))
      expect(b.accessKeyId).not.toBe(a.accessKeyId) // unverified: never shared
      expect(h.mock.stats.requests).toBe(2)
      expect(
        await metric(h, 'pod_identity_local_validation_total{result="keys_unavailable"}'),
      ).toBe(2)
      const said = h.logs.filter((l) => l.includes('"event":"token_verification_unavailable"'))
      expect(said).toHaveLength(1)
      expect(said[0]).toContain(why)
      expect(said[0]).not.toContain('not-a-token')
      await h.close()
      h = undefined
      await apiServer?.stop()
      apiServer = undefined
      await rm(dir, { recursive: true })
    }
  })

  it('without the mounted token, the agent does not start, and says what to mount', async () => {
    const issuer = await TokenIssuer.generate()
    const { dir, config } = await inCluster({ issuer })
    await rm(join(dir, 'token'))
    const failed = await startHarness({ issuer, config }).catch((e: unknown) => e)
    expect(failed).toBeInstanceOf(ConfigError)
    expect((failed as Error).message).toBe(
      `--token-jwks kubernetes: cannot read ${join(dir, 'token')} (ENOENT): the agent reads the API server's keys as its own service account; mount its token (automountServiceAccountToken: true, as manifests/components/verify-tokens does)`,
    )
    await rm(dir, { recursive: true })
  })
})

describe("the API server's key-set URL given as a plain URL", () => {
  it('is refused without a bearer token, and the log points to --token-jwks kubernetes', async () => {
    const issuer = await TokenIssuer.generate()
    apiServer = new JwksServer(issuer.publicJwks(), { apiServer: { tokens: () => [], tls: false } })
    h = await startHarness({
      issuer,
      config: { tokenJwks: await apiServer.start(), tokenIssuer: DEFAULT_ISSUER },
    })
    await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'a' })))
    expect(apiServer.authorizations).toEqual([undefined]) // no token is sent to a plain URL
    const said = h.logs.filter((l) => l.includes('"event":"token_verification_unavailable"'))
    expect(said).toHaveLength(1)
    expect(said[0]).toContain(
      "answered HTTP 401: for the API server's own key set use --token-jwks kubernetes",
    )
  })
})
