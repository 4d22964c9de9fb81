// The per-source and agent-wide limits and remembered refusals, on the real agent over real sockets,
// through fromHttp and botocore where a pod would see them: what a pod is answered, what reaches
// EKS Auth (the mock's call count), and pod_identity_requests_limited_total{reason}.

import { createConnection } from 'node:net'
import type { Socket } from 'node:net'
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

async function harness(o: HarnessOptions = {}): Promise<Harness> {
  h = await startHarness(o)
  return h
}

function get(h: Harness, token: string, from?: string) {
  return rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token }, 'GET', from)
}

async function limited(h: Harness, reason: string): Promise<number> {
  return (
    metricValue(await h.metricsText(), `pod_identity_requests_limited_total{reason="${reason}"}`) ??
    0
  )
}

describe('--client-miss-rate (default 10/s, burst 20)', () => {
  it('answers a source 429 TooManyRequests once it asked for 20 new tokens at once, before any call; hits and other sources go on', async () => {
    const h = await harness()
    const tokens = await Promise.all(
      Array.from({ length: 41 }, (_, i) => h.mint({ podName: `p${i}` })),
    )
    const started = performance.now()
    const burst = await Promise.all(tokens.slice(0, 40).map((t) => get(h, t)))
    const elapsedS = (performance.now() - started) / 1000
    const served = burst.filter((r) => r.status === 200)
    const refused = burst.filter((r) => r.status === 429)
    // The bucket holds 20 and refills 10/s while the burst is answered.
    expect(served.length).toBeGreaterThanOrEqual(20)
    expect(served.length).toBeLessThanOrEqual(20 + Math.ceil(10 * elapsedS))
    expect(served.length + refused.length).toBe(40)
    expect(h.mock.stats.requests).toBe(served.length) // refused before any call
    const r = refused[0]!
    expect(r.headers['retry-after']).toBe('1')
    expect(r.headers['content-type']).toBe('application/json')
    expect(JSON.parse(r.body)).toEqual({
      Code: 'TooManyRequests',
      Message:
        'Too many requests for new credentials from this pod (at most 10 per second per source address): retry after 1 s',
    })
    expect(await limited(h, 'miss_rate')).toBe(refused.length)
    // Cache hits never count, and another pod's address has its own limit.
    const hit = tokens[burst.findIndex((x) => x.status === 200)]!
    expect((await get(h, hit)).status).toBe(200)
    expect((await get(h, tokens[40]!, '127.0.0.2')).status).toBe(200)
    expect(h.mock.stats.requests).toBe(served.length + 1)
  })

  it('fromHttp sees Code and Message; botocore prints the body; a later retry is served', async () => {
    // 0.5/s: a burst of 1, the next call allowed 2 s later.
    const h = await harness({ config: { clientMissRate: 0.5 } })
    expect((await get(h, await h.mint({ podName: 'first' }))).status).toBe(200)
    const file = await h.tokenFile(await h.mint({ podName: 'late' }))
    const err = (await h.sdkFetch(file).catch((e: unknown) => e)) as SdkError
    expect(err.message).toBe('Server responded with status: 429')
    expect(err.Code).toBe('TooManyRequests')
    expect(err.Message).toMatch(/: retry after 2 s$/)
    const py = await botocore(h.url, file)
    expect(py.error).toBe('CredentialRetrievalError')
    expect(py.message).toContain('Received non 200 response 429')
    expect(py.message).toContain('TooManyRequests')
    // fromHttp's own retries, 1 s apart, get through once the bucket has a token again.
    const creds = await h.sdkFetch(file, { maxRetries: 3, timeout: 1000 })
    expect(creds.accessKeyId).toMatch(/^ASIA/)
  })
})

describe('remembered refusals (--negative-cache-ttl, default 5 s)', () => {
  it("a pod without an association costs one EKS Auth call for fromHttp's 4 attempts and botocore's 3", async () => {
    const h = await harness()
    const token = await h.mint({ namespace: 'nobody', serviceAccount: 'nothing' })
    const file = await h.tokenFile(token)
    const err = (await h
      .sdkFetch(file, { maxRetries: 3, timeout: 200 })
      .catch((e: unknown) => e)) as SdkError
    expect(err.Code).toBe('ResourceNotFoundException')
    expect(h.mock.stats.requests).toBe(1)
    const py = await botocore(h.url, file)
    expect(py.error).toBe('CredentialRetrievalError')
    expect(py.message).toContain('ResourceNotFoundException')
    expect(py.sleeps).toBe(3)
    expect(h.mock.stats.requests).toBe(1)
    const text = await h.metricsText()
    expect(metricValue(text, 'pod_identity_cache_refusals_replayed_total')).toBe(3 + 3)
    expect(metricValue(text, 'pod_identity_http_response{code="404"}')).toBe(4 + 3)
  })

  it('an association created meanwhile is picked up once the window has passed', async () => {
    const h = await harness({ config: { negativeCacheTtlMs: 1000 } })
    const token = await h.mint({ namespace: 'late', serviceAccount: 'joiner' })
    expect((await get(h, token)).status).toBe(404)
    h.mock.setAssociations([
      {
        namespace: 'late',
        serviceAccount: 'joiner',
        roleArn: 'arn:aws:iam::111122223333:role/Late',
      },
    ])
    expect((await get(h, token)).status).toBe(404) // still within the window: no call
    expect(h.mock.stats.requests).toBe(1)
    await until(async () => (await get(h, token)).status === 200, 'the association to be seen')
    expect(h.mock.stats.requests).toBe(2)
  })
})

/** Open a keep-alive connection from `from` and wait until it is accepted (or closed). */
function connect(h: Harness, from: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: '127.0.0.1', port: h.port, localAddress: from })
    s.once('connect', () => resolve(s))
    s.once('error', reject)
  })
}

/** One request on an open connection: the status, or 'closed' when the agent closed it unanswered. */
function ask(s: Socket, h: Harness, token: string): Promise<number | 'closed'> {
  return new Promise((resolve) => {
    let data = ''
    const done = (v: number | 'closed'): void => {
      s.removeAllListeners('data')
      resolve(v)
    }
    s.on('data', (c: Buffer) => {
      data += c.toString('latin1')
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data)
      if (m !== null && data.includes('\r\n\r\n')) done(Number(m[1]))
    })
    s.once('close', () => done('closed'))
    s.once('error', () => done('closed'))
    s.write(
      `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:${h.port}\r\nAuthorization: ${token}\r\n\r\n`,
    )
  })
}

describe('--client-max-connections', () => {
  it("holds a source's connections beyond the cap unanswered until one of its others closes, never another source's", async () => {
    const h = await harness({ config: { clientMaxConnections: 3 } })
    const token = await h.mint()
    const open = await Promise.all([1, 2, 3].map(() => connect(h, '127.0.0.1')))
    for (const s of open) expect(await ask(s, h, token)).toBe(200)
    const extra = await connect(h, '127.0.0.1')
    const extraAnswer = ask(extra, h, token)
    await until(async () => (await limited(h, 'connections')) === 1, 'the 4th connection held')
    const other = await connect(h, '127.0.0.2')
    expect(await ask(other, h, token)).toBe(200)
    let answered = false
    void extraAnswer.then(() => (answered = true))
    expect((await get(h, token, '127.0.0.3')).status).toBe(200) // a turn for the held one to be read
    expect(answered).toBe(false)
    open[0]!.destroy() // a slot frees: the held connection is read and answered
    expect(await extraAnswer).toBe(200)
    for (const s of [...open, other, extra]) s.destroy()
  })
})

describe('--max-request-rate', () => {
  it('limits every request, hits too, with 429; the readiness probe is not a request', async () => {
    const h = await harness({ config: { maxRequestRate: 10, clientMissRate: 0 } })
    const token = await h.mint()
    const statuses: number[] = []
    for (let i = 0; i < 8; i++) statuses.push((await get(h, token)).status)
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]) // burst: half the rate
    expect(statuses).toContain(429)
    expect(await limited(h, 'request_rate')).toBeGreaterThan(0)
    const ready = await rawGet(`http://localhost:${h.agent.probe.port}/readyz`, {
      host: 'localhost',
    })
    expect(ready.status).toBe(200)
  })
})
