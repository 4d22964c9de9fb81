// The STS credential source and the fallback from EKS Auth to STS, on the real agent with the
// mock EKS Auth and the mock STS, through fromHttp and botocore as pods would use them.

import { writeFile } from 'node:fs/promises'
import { afterEach, describe, expect, it } from 'vitest'
import { botocore } from '../helpers/botocore.js'
import type { Harness, HarnessOptions } from '../helpers/harness.js'
import { metricValue, rawGet, startHarness } from '../helpers/harness.js'
import { until } from '../helpers/until.js'

type SdkError = Error & { Code?: string; Message?: string }

let h: Harness | undefined
afterEach(async () => {
  await h?.close()
  h = undefined
})

async function harness(o: HarnessOptions): Promise<Harness> {
  h = await startHarness({ sts: true, ...o })
  return h
}

/** fromHttp as a pod's first attempt: one try, its default 1 s timeout; time in ms and outcome. */
async function firstAttempt(
  h: Harness,
  token: string,
): Promise<{ ms: number; accessKeyId?: string; error?: SdkError }> {
  const file = await h.tokenFile(token)
  const t0 = performance.now()
  const outcome = await h.sdkFetch(file, { maxRetries: 0, timeout: 1000 }).then(
    (c) => ({ accessKeyId: c.accessKeyId }),
    (e: unknown) => ({ error: e as SdkError }),
  )
  return { ms: performance.now() - t0, ...outcome }
}

describe('--credential-source sts', () => {
  it('serves fromHttp and botocore from STS, with the account of the assumed role, and never calls EKS Auth', async () => {
    const h = await harness({ config: { credentialSource: 'sts', clusterName: undefined } })
    const token = await h.mint({ podName: 'app-1' })
    const file = await h.tokenFile(token)
    const creds = await h.sdkFetch(file)
    expect(creds.accessKeyId).toMatch(/^ASIA/)
    const raw = await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token })
    expect(JSON.parse(raw.body)).toMatchObject({
      AccessKeyId: creds.accessKeyId,
      AccountId: '111122223333',
    })
    const py = await botocore(h.url, file)
    expect(py.error).toBeUndefined()
    expect(py.account_id).toBe('111122223333')
    expect(h.mock.stats.requests).toBe(0)
    expect(h.sts!.stats.byOutcome.success).toBe(1) // the other fetches were hits
    const text = await h.metricsText()
    expect(
      metricValue(text, 'pod_identity_upstream_requests_total{api="sts",outcome="success"}'),
    ).toBe(1)
    expect(metricValue(text, 'pod_identity_associations_entries')).toBe(2)
  })

  it('a service account without an association: 404 NoAssociation, and STS is not called', async () => {
    const h = await harness({ config: { credentialSource: 'sts', clusterName: undefined } })
    const file = await h.tokenFile(await h.mint({ namespace: 'nobody', serviceAccount: 'nothing' }))
    const err = (await h.sdkFetch(file).catch((e: unknown) => e)) as SdkError
    expect(err.message).toBe('Server responded with status: 404')
    expect(err.Code).toBe('NoAssociation')
    expect(err.Message).toBe(
      'No association for namespace "nobody", service account "nothing" in the associations file',
    )
    const py = await botocore(h.url, file)
    expect(py.message).toContain('NoAssociation')
    expect(h.sts!.stats.requests).toBe(0)
  })

  it('a role whose trust does not name the service account: 403 AccessDenied that says what to look at', async () => {
    const h = await harness({ config: { credentialSource: 'sts', clusterName: undefined } })
    h.sts!.setAssociations([
      {
        namespace: 'default',
        serviceAccount: 'app',
        roleArn: 'arn:aws:iam::111122223333:role/Other',
      },
    ])
    const err = (await h
      .sdkFetch(await h.tokenFile(await h.mint()))
      .catch((e: unknown) => e)) as SdkError
    expect(err.Code).toBe('AccessDenied')
    expect(err.Message).toMatch(
      /^\[[0-9a-f-]+\]: \(AccessDenied\): Not authorized to perform sts:AssumeRoleWithWebIdentity; likely cause: the role's trust policy/,
    )
    expect(err.Message).toMatch(/fault: client$/)
  })

  it('picks up a changed associations file without a restart', async () => {
    const h = await harness({ config: { credentialSource: 'sts', clusterName: undefined } })
    const token = await h.mint({ namespace: 'late', serviceAccount: 'joiner' })
    const get = () => rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token })
    expect((await get()).status).toBe(404)
    const added = {
      namespace: 'late',
      serviceAccount: 'joiner',
      roleArn: 'arn:aws:iam::111122223333:role/Late',
    }
    h.sts!.setAssociations([added])
    await writeFile(h.associationsFile!, JSON.stringify({ associations: [added] }))
    await until(async () => (await get()).status === 200, 'the new association to be used')
    expect(
      h.logs.some((l) => l.includes('"event":"associations_loaded"') && l.includes('"entries":1')),
    ).toBe(true)
  })
})

describe('--credential-source eks-auth-then-sts', () => {
  const fallback: HarnessOptions['config'] = { credentialSource: 'eks-auth-then-sts' }

  it('EKS Auth answering: STS is not asked', async () => {
    const h = await harness({ config: fallback })
    const { accessKeyId } = await firstAttempt(h, await h.mint())
    expect(accessKeyId).toMatch(/^ASIA/)
    expect(h.mock.stats.byOutcome.success).toBe(1)
    expect(h.sts!.stats.requests).toBe(0)
  })

  it.each([
    ['connection refused', { startMock: false }],
    ['503', { mock: { faults: { errorRate: 1, errorStatus: 503 as const } } }],
    ['no answer (timeout)', { mock: { faults: { latencyMs: 5000 } } }],
  ])('EKS Auth %s: the pod is answered by STS within its first 1 s attempt', async (_what, o) => {
    const h = await harness({ config: fallback, ...o })
    const { ms, accessKeyId, error } = await firstAttempt(h, await h.mint())
    expect(error).toBeUndefined()
    expect(accessKeyId).toMatch(/^ASIA/)
    expect(ms).toBeLessThan(1000)
    expect(h.sts!.stats.byOutcome.success).toBe(1)
    const text = await h.metricsText()
    const fellBack = text
      .split('\n')
      .filter((l) => l.startsWith('pod_identity_upstream_fallbacks_total{'))
    expect(fellBack).toHaveLength(1)
    // botocore is served the same way.
    const py = await botocore(h.url, await h.tokenFile(await h.mint({ podName: 'python' })))
    expect(py.error).toBeUndefined()
  })

  it.each([
    ['400 (a token EKS Auth refuses)', 'forged', 400, 'InvalidTokenException'],
    ['404 (no association in EKS Auth)', 'unassociated', 404, 'ResourceNotFoundException'],
  ])(
    'EKS Auth answering %s: the pod gets that answer, and STS is not asked',
    async (_w, kind, status, code) => {
      const h = await harness({ config: fallback })
      // STS would serve both: the file and the mock STS know the pair.
      const pair = {
        namespace: 'default',
        serviceAccount: 'ghost',
        roleArn: 'arn:aws:iam::111122223333:role/Ghost',
      }
      h.sts!.setAssociations([pair])
      await writeFile(h.associationsFile!, JSON.stringify({ associations: [pair] }))
      const token =
        kind === 'forged'
          ? `${(await h.mint()).split('.').slice(0, 2).join('.')}.Zm9yZ2Vk`
          : await h.mint({ serviceAccount: 'ghost' })
      const res = await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token })
      expect(res.status).toBe(status)
      expect((JSON.parse(res.body) as { Code: string }).Code).toBe(code)
      expect(h.sts!.stats.requests).toBe(0)
    },
  )

  it('EKS Auth refusing the node (403, a bad signature): the pod gets the 403, STS is not asked', async () => {
    const h = await harness({
      config: fallback,
      mock: {
        nodeCredentials: [{ accessKeyId: 'AKIAOTHERNODE0000001', secretAccessKey: 'other' }],
      },
    })
    const res = await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: await h.mint() })
    expect(res.status).toBe(403)
    expect(h.sts!.stats.requests).toBe(0)
  })
})
