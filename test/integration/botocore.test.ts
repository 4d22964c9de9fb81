// botocore's ContainerProvider (what boto3 and the AWS CLI use) against the real agent.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { botocore } from '../helpers/botocore.js'
import type { Harness } from '../helpers/harness.js'
import { startHarness } from '../helpers/harness.js'

describe('botocore ContainerProvider', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness()
  })
  afterAll(async () => {
    await h.close()
  })

  it('gets the same credentials the JS SDK gets, with expiry and account id', async () => {
    const file = await h.tokenFile(await h.mint({ podName: 'boto' }))
    const js = await h.sdkFetch(file)
    const py = await botocore(h.url, file)
    expect(py.error).toBeUndefined()
    expect(py.method).toBe('container-role')
    expect(py.access_key).toBe(js.accessKeyId)
    expect(py.secret_len).toBe(40)
    expect(py.token_len).toBe(js.sessionToken!.length)
    expect(new Date(py.expiry as string).getTime()).toBe(js.expiration!.getTime())
    expect(py.account_id).toBe('111122223333')
    expect(h.mock.stats.requests).toBe(1)
  })

  it('shows the JSON error body for an unknown association', async () => {
    const file = await h.tokenFile(await h.mint({ namespace: 'nobody', serviceAccount: 'none' }))
    const py = await botocore(h.url, file)
    expect(py.error).toBe('CredentialRetrievalError')
    expect(py.message).toContain('Received non 200 response 404 from container metadata')
    expect(py.message).toContain('"Code": "ResourceNotFoundException"'.replace(': ', ':'))
  })

  it('shows the JSON error body for an expired token', async () => {
    const file = await h.tokenFile(
      await h.mint({ nowMs: Date.now() - 7_200_000, expiresInSeconds: 3600 }),
    )
    const py = await botocore(h.url, file)
    expect(py.error).toBe('CredentialRetrievalError')
    expect(py.message).toContain('400')
    expect(py.message).toContain(
      'Service account token failed basic claim validations: token is expired',
    )
  })
})
