// The credential endpoint end to end: real agent, real mock EKS Auth, real SDK provider (fromHttp).

import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Harness } from '../helpers/harness.js'
import { NODE_KEY, metricValue, rawGet, startHarness } from '../helpers/harness.js'

describe('GET /v1/credentials through the AWS SDK (fromHttp)', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness()
  })
  afterAll(async () => {
    await h.close()
  })
  afterEach(() => {
    h.mock.resetStats()
    h.mock.setFaults({ latencyMs: 0, throttleQps: 0, errorRate: 0, down: false })
  })

  it('returns the credentials EKS Auth issued, in the SDK format', async () => {
    const token = await h.mint()
    const creds = await h.sdkFetch(await h.tokenFile(token))
    expect(creds.accessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/)
    expect(creds.secretAccessKey).toHaveLength(40)
    expect(creds.sessionToken?.length).toBeGreaterThan(100)
    const leftMs = creds.expiration!.getTime() - Date.now()
    expect(leftMs).toBeGreaterThan(5.9 * 3_600_000)
    expect(leftMs).toBeLessThanOrEqual(6 * 3_600_000)
    expect(h.mock.stats.requests).toBe(1)
    expect(h.mock.stats.accessKeyIds).toEqual(['AKIAHARNESSNODE00001'])

    // The raw body: exact key order, AccountId from the assumed-role ARN, Expiration ending in Z.
    const res = await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token })
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toBe('application/json')
    const body = JSON.parse(res.body) as Record<string, string>
    expect(Object.keys(body)).toEqual([
      'AccessKeyId',
      'SecretAccessKey',
      'Token',
      'AccountId',
      'Expiration',
    ])
    expect(body.AccountId).toBe('111122223333')
    expect(body.AccessKeyId).toBe(creds.accessKeyId)
    expect(body.Expiration).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
    expect(new Date(body.Expiration!).getTime()).toBe(creds.expiration!.getTime())
    expect(h.mock.stats.requests).toBe(1) // the second request was a cache hit
  })

  it('answers HEAD with the headers of GET and no body', async () => {
    const token = await h.mint()
    await h.sdkFetch(await h.tokenFile(token))
    const res = await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token }, 'HEAD')
    expect(res.status).toBe(200)
    expect(res.body).toBe('')
    expect(Number(res.headers['content-length'])).toBeGreaterThan(100)
  })

  it('200 concurrent first requests for one token cause exactly one upstream call', async () => {
    h.mock.setFaults({ latencyMs: 300 })
    const file = await h.tokenFile(await h.mint({ podName: 'herd' }))
    const waitsBefore =
      metricValue(await h.metricsText(), 'pod_identity_cache_singleflight_waits_total') ?? 0
    const all = await Promise.all(Array.from({ length: 200 }, () => h.sdkFetch(file)))
    expect(h.mock.stats.requests).toBe(1)
    expect(new Set(all.map((c) => c.accessKeyId)).size).toBe(1)
    const waits =
      metricValue(await h.metricsText(), 'pod_identity_cache_singleflight_waits_total') ?? 0
    // Requests arriving while the call is in flight join it; later ones are cache hits.
    expect(waits - waitsBefore).toBeGreaterThan(0)
    expect(waits - waitsBefore).toBeLessThanOrEqual(199)
  })

  it('an SDK that gives up still gets the result of the call it started, on its retry', async () => {
    h.mock.setFaults({ latencyMs: 700 })
    const file = await h.tokenFile(await h.mint({ podName: 'slow' }))
    // The SDK gives up after 400 ms and retries 400 ms later; the upstream call goes on meanwhile.
    const creds = await h.sdkFetch(file, { maxRetries: 3, timeout: 400 })
    expect(creds.accessKeyId).toMatch(/^ASIA/)
    expect(h.mock.stats.requests).toBe(1)
  })

  it('50 sequential requests cost one upstream call', async () => {
    const file = await h.tokenFile(await h.mint({ podName: 'sequential' }))
    const first = await h.sdkFetch(file)
    for (let i = 0; i < 49; i++) {
      const c = await h.sdkFetch(file)
      expect(c.accessKeyId).toBe(first.accessKeyId)
    }
    expect(h.mock.stats.requests).toBe(1)
  })

  it('each distinct pod token gets its own credentials', async () => {
    const a = await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'pod-a' })))
    const b = await h.sdkFetch(
      await h.tokenFile(
        await h.mint({ namespace: 'team-b', serviceAccount: 'worker', podName: 'pod-b' }),
      ),
    )
    expect(a.accessKeyId).not.toBe(b.accessKeyId)
    expect(h.mock.stats.requests).toBe(2)
  })

  const badTokens: Array<[string, string | (() => Promise<string>), string, string]> = [
    ['empty', '', 'MissingToken', 'Service account token cannot be empty'],
    [
      'garbage',
      'not-a-jwt',
      'MalformedToken',
      'Service account token cannot be parsed: token is malformed: token contains an invalid number of segments',
    ],
    [
      'bad base64',
      'a!b.c.d',
      'MalformedToken',
      'Service account token cannot be parsed: token is malformed: could not base64 decode header',
    ],
  ]
  for (const [name, token, code, message] of badTokens) {
    it(`${name} token -> 400 ${code}, no upstream call`, async () => {
      const file = await h.tokenFile(typeof token === 'string' ? token : await token())
      const err = (await h.sdkFetch(file).catch((e: unknown) => e)) as Error
      expect(err).toBeInstanceOf(Error)
      expect(err.message).toContain('400')
      const res = await rawGet(h.url, {
        host: `127.0.0.1:${h.port}`,
        ...(token === '' ? {} : { authorization: token as string }),
      })
      expect(res.status).toBe(400)
      expect(res.headers['content-type']).toBe('application/json')
      const body = JSON.parse(res.body) as { Code: string; Message: string }
      expect(body.Code).toBe(code)
      expect(body.Message.startsWith(message)).toBe(true)
      expect(h.mock.stats.requests).toBe(0)
    })
  }

  it('expired token -> 400 InvalidTokenClaims, no upstream call, even when its credentials are cached', async () => {
    const expired = await h.mint({ nowMs: Date.now() - 7_200_000, expiresInSeconds: 3600 })
    const err = (await h.sdkFetch(await h.tokenFile(expired)).catch((e: unknown) => e)) as Error
    expect(err.message).toContain('400')
    const res = await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: expired })
    expect(res.status).toBe(400)
    expect(JSON.parse(res.body)).toEqual({
      Code: 'InvalidTokenClaims',
      Message: 'Service account token failed basic claim validations: token is expired',
    })
    expect(h.mock.stats.requests).toBe(0)
  })

  it('foreign Host -> 403 with the reference message; X-Forwarded-For -> 403', async () => {
    const token = await h.mint()
    const res = await rawGet(h.url, { host: 'evil.example.com', authorization: token })
    expect(res.status).toBe(403)
    expect(JSON.parse(res.body)).toEqual({
      Code: 'AccessDenied',
      Message:
        'Access Denied. Called agent through invalid address, please use either [127.0.0.1] address not evil.example.com',
    })
    const fwd = await rawGet(h.url, {
      host: `127.0.0.1:${h.port}`,
      authorization: token,
      'x-forwarded-for': '10.0.0.1',
    })
    expect(fwd.status).toBe(403)
    expect((JSON.parse(fwd.body) as { Code: string }).Code).toBe('AccessDenied')
    expect(h.mock.stats.requests).toBe(0)
  })

  it('unknown association -> 404 ResourceNotFoundException passed through, and answered again for the retry without a call', async () => {
    const token = await h.mint({ namespace: 'nobody', serviceAccount: 'nothing' })
    const err = (await h.sdkFetch(await h.tokenFile(token)).catch((e: unknown) => e)) as Error
    expect(err.message).toContain('404')
    const res = await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token })
    expect(res.status).toBe(404)
    const body = JSON.parse(res.body) as { Code: string; Message: string }
    expect(body.Code).toBe('ResourceNotFoundException')
    expect(body.Message).toMatch(
      /^\[[0-9a-f-]+\]: \(ResourceNotFoundException\): .+, fault: client$/,
    )
    // The refusal is remembered for --negative-cache-ttl (5 s): no credentials are cached, and
    // the retry is answered without a second call.
    expect(h.mock.stats.requests).toBe(1)
    expect(metricValue(await h.metricsText(), 'pod_identity_cache_refusals_replayed_total')).toBe(1)
  })

  it('upstream 503 is retried inside the budget; persistent 5xx is passed through', async () => {
    h.mock.setFaults({ errorRate: 1, errorStatus: 503 })
    const res = await rawGet(h.url, {
      host: `127.0.0.1:${h.port}`,
      authorization: await h.mint({ podName: 'five' }),
    })
    expect(res.status).toBe(503)
    expect((JSON.parse(res.body) as { Code: string }).Code).toBe('ServiceUnavailableException')
    expect(res.headers['retry-after']).toBe('1')
    expect(h.mock.stats.requests).toBe(3)
  })

  it('other paths -> 404, other methods -> 405, query string ignored', async () => {
    const token = await h.mint()
    const nf = await rawGet(h.url.replace('/v1/credentials', '/v2/credentials'), {
      host: `127.0.0.1:${h.port}`,
    })
    expect(nf.status).toBe(404)
    expect(JSON.parse(nf.body)).toEqual({ Code: 'NotFound', Message: '404 page not found' })
    const root = await rawGet(h.url.replace('/v1/credentials', '/'), {
      host: `127.0.0.1:${h.port}`,
    })
    expect(root.status).toBe(404)
    const post = await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token }, 'POST')
    expect(post.status).toBe(405)
    expect(post.headers.allow).toBe('GET, HEAD')
    expect((JSON.parse(post.body) as { Code: string }).Code).toBe('MethodNotAllowed')
    const q = await rawGet(`${h.url}?id=1`, { host: `127.0.0.1:${h.port}`, authorization: token })
    expect(q.status).toBe(200)
  })

  it('times every credential request in pod_identity_request_duration_seconds by outcome', async () => {
    const name = 'pod_identity_request_duration_seconds'
    const series = async (s: string) => metricValue(await h.metricsText(), `${name}_${s}`) ?? 0
    const before = {
      hit: await series('count{outcome="hit"}'),
      miss: await series('count{outcome="miss"}'),
      error: await series('count{outcome="error"}'),
      missUnder100ms: await series('bucket{le="0.1",outcome="miss"}'),
      missSum: await series('sum{outcome="miss"}'),
    }
    h.mock.setFaults({ latencyMs: 150 })
    const file = await h.tokenFile(await h.mint({ podName: 'timed' }))
    await h.sdkFetch(file) // a miss: at least the upstream's 150 ms
    for (let i = 0; i < 4; i++) await h.sdkFetch(file) // hits
    const refused = await rawGet(h.url, { host: `127.0.0.1:${h.port}` }) // no token
    expect(refused.status).toBe(400)
    expect((await series('count{outcome="miss"}')) - before.miss).toBe(1)
    expect((await series('bucket{le="0.1",outcome="miss"}')) - before.missUnder100ms).toBe(0)
    expect((await series('sum{outcome="miss"}')) - before.missSum).toBeGreaterThanOrEqual(0.15)
    expect((await series('count{outcome="hit"}')) - before.hit).toBe(4)
    expect((await series('count{outcome="error"}')) - before.error).toBe(1)
    // a hit is answered from memory: well under a second, whatever the machine's load
    expect(await series('bucket{le="1",outcome="hit"}')).toBe(await series('count{outcome="hit"}'))
  })

  it('counts every response in pod_identity_http_response{code}', async () => {
    const text = await h.metricsText()
    for (const code of ['200', '400', '403', '404', '405', '503']) {
      expect(metricValue(text, `pod_identity_http_response{code="${code}"}`)).toBeGreaterThan(0)
    }
  })
})

describe('upstream failures', () => {
  it('upstream down after warm-up: cached credentials are still served', async () => {
    const h = await startHarness()
    try {
      const file = await h.tokenFile(await h.mint())
      const first = await h.sdkFetch(file)
      await h.mock.stop()
      for (let i = 0; i < 5; i++)
        expect((await h.sdkFetch(file)).accessKeyId).toBe(first.accessKeyId)
      // A new pod cannot be served: the agent says why, as JSON, with 502.
      const res = await rawGet(h.url, {
        host: `127.0.0.1:${h.port}`,
        authorization: await h.mint({ podName: 'new' }),
      })
      expect(res.status).toBe(502)
      expect((JSON.parse(res.body) as { Code: string }).Code).toBe('UpstreamUnreachable')
    } finally {
      await h.close()
    }
  })

  it('throttled upstream: the call is queued and paced, the pod gets 503 UpstreamThrottled with Retry-After, and the SDK retry is served from that one call', async () => {
    const h = await startHarness()
    try {
      h.mock.setFaults({ throttleQps: 1 })
      await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'first' }))) // the only token
      const token = await h.mint({ podName: 'throttled' })
      const res = await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token })
      expect(res.status).toBe(503)
      expect(res.headers['content-type']).toBe('application/json')
      expect(res.headers['retry-after']).toBe('1')
      const body = JSON.parse(res.body) as { Code: string; Message: string }
      expect(body.Code).toBe('UpstreamThrottled')
      expect(body.Message).toMatch(/^EKS Auth is throttling this node's calls; .* retry after 1 s$/)
      expect(h.mock.stats.byOutcome.ThrottlingException).toBe(1)
      // The real SDK with its defaults (1 s timeout, 3 retries 1 s apart): the agent ran the
      // queued call once the pace allowed it, and the retry is answered from its result.
      const creds = await h.sdkFetch(await h.tokenFile(token), { maxRetries: 3, timeout: 1000 })
      expect(creds.accessKeyId).toMatch(/^ASIA/)
      expect(h.mock.stats.requests).toBe(3) // first pod, the throttled try, the paced retry
      const text = await h.metricsText()
      expect(metricValue(text, 'pod_identity_upstream_queue_rejections_total')).toBeGreaterThan(0)
      expect(
        metricValue(text, 'pod_identity_upstream_pace_per_second{api="eks-auth"}'),
      ).toBeGreaterThan(0)
      expect(metricValue(text, 'pod_identity_upstream_queue_length{api="eks-auth"}')).toBe(0)
      expect(metricValue(text, 'pod_identity_http_response{code="429"}') ?? 0).toBe(0)
    } finally {
      await h.close()
    }
  })

  it('slow upstream, not throttling: pods whose calls wait over a second for a slot are served, not refused', async () => {
    // 40 pods at once, each call 600 ms: 8 run first (slow start), then 16, then the last 16,
    // which wait about 1.2 s in the queue. No 429 means no pacing: they wait and get credentials.
    // 40 pods would have 40 source addresses; fromHttp takes no local address, so they share
    // 127.0.0.1 here, and the per-source miss rate is off (it is tested on its own below).
    const h = await startHarness({
      mock: { faults: { latencyMs: 600 } },
      config: { clientMissRate: 0 },
    })
    try {
      const files = await Promise.all(
        Array.from({ length: 40 }, async (_, i) =>
          h.tokenFile(await h.mint({ podName: `slow-${i}` })),
        ),
      )
      const started = Date.now()
      const creds = await Promise.all(
        files.map((f) => h.sdkFetch(f, { maxRetries: 0, timeout: 5000 })),
      )
      expect(Date.now() - started).toBeGreaterThanOrEqual(1200) // three rounds of 600 ms
      expect(new Set(creds.map((c) => c.accessKeyId)).size).toBe(40)
      expect(h.mock.stats.requests).toBe(40)
      const text = await h.metricsText()
      expect(metricValue(text, 'pod_identity_http_response{code="200"}')).toBe(40)
      expect(metricValue(text, 'pod_identity_http_response{code="503"}') ?? 0).toBe(0)
      expect(metricValue(text, 'pod_identity_upstream_queue_rejections_total')).toBe(0)
    } finally {
      await h.close()
    }
  })

  it('upstream hanging -> 504 UpstreamTimeout within the budget', async () => {
    const h = await startHarness({ mock: { faults: { latencyMs: 10_000 } } })
    try {
      const started = Date.now()
      const res = await rawGet(h.url, {
        host: `127.0.0.1:${h.port}`,
        authorization: await h.mint(),
      })
      expect(res.status).toBe(504)
      expect((JSON.parse(res.body) as { Code: string }).Code).toBe('UpstreamTimeout')
      expect(Date.now() - started).toBeLessThan(4000)
    } finally {
      await h.close()
    }
  })

  it('an upstream that quotes the request back: the token and the node session token are cut out of the SDK error, the body and the logs', async () => {
    // EKS Auth's error wire format (x-amzn-ErrorType, {"__type","message"}), with a message that
    // echoes the request body (the pod token) and the signed session token header.
    const echo = createServer((req, res) => {
      let body = ''
      req.on('data', (c: Buffer) => (body += c.toString()))
      req.on('end', () => {
        const message = `Invalid token in ${body} signed with x-amz-security-token:${String(req.headers['x-amz-security-token'])}`
        res.writeHead(400, {
          'content-type': 'application/x-amz-json-1.1',
          'x-amzn-ErrorType':
            'InvalidTokenException:http://internal.amazon.com/coral/com.amazonaws.eksauth/',
          'x-amzn-RequestId': 'echo-1',
        })
        res.end(JSON.stringify({ __type: 'InvalidTokenException', message }))
      })
    })
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
    const endpoint = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`
    const h = await startHarness({ startMock: false, config: { endpoint } })
    try {
      const token = await h.mint()
      const sdkError = await h.sdkFetch(await h.tokenFile(token)).then(
        () => undefined,
        (e: unknown) => e as Error & { Code?: string; Message?: string },
      )
      const res = await rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token })
      expect(res.status).toBe(400)
      expect(JSON.parse(res.body)).toMatchObject({ Code: 'InvalidTokenException' })
      expect(res.body).toContain('Invalid token in {\\"token\\":\\"[redacted]\\"}')
      // fromHttp copies Code and Message onto its error for a 4xx
      expect(sdkError?.Code).toBe('InvalidTokenException')
      expect(sdkError?.Message).toContain('x-amz-security-token:[redacted]')
      const seen = [
        sdkError?.message ?? '',
        sdkError?.Message ?? '',
        res.body,
        ...h.logs,
        await h.metricsText(),
      ]
      expect(h.logs.some((l) => l.includes('[redacted]'))).toBe(true)
      for (const secret of [token, NODE_KEY.sessionToken]) {
        for (let i = 0; i + 16 <= secret.length; i++) {
          const piece = secret.slice(i, i + 16)
          for (const text of seen) expect(text.includes(piece), piece).toBe(false)
        }
      }
    } finally {
      await h.close()
      await new Promise((r) => echo.close(r))
    }
  })

  it('no upstream at all -> 502 UpstreamUnreachable', async () => {
    const h = await startHarness({ startMock: false })
    try {
      const res = await rawGet(h.url, {
        host: `127.0.0.1:${h.port}`,
        authorization: await h.mint(),
      })
      expect(res.status).toBe(502)
      expect((JSON.parse(res.body) as { Code: string }).Code).toBe('UpstreamUnreachable')
    } finally {
      await h.close()
    }
  })
})

describe('secrets never leak', () => {
  it('no token, secret key or session token in any log line, metric or error body', async () => {
    const h = await startHarness()
    const bodies: string[] = []
    const get = async (authorization?: string): Promise<number> => {
      const res = await rawGet(h.url, {
        host: `127.0.0.1:${h.port}`,
        ...(authorization === undefined ? {} : { authorization }),
      })
      bodies.push(res.body)
      return res.status
    }
    try {
      // Every path a request can take: miss, hit, local refusals, upstream refusals and failures.
      const token = await h.mint({ podName: 'leak-check' })
      await h.sdkFetch(await h.tokenFile(token))
      expect(await get(token)).toBe(200)
      expect(await get()).toBe(400)
      expect(await get('not-a-jwt')).toBe(400)
      expect(
        await get(await h.mint({ nowMs: Date.now() - 7_200_000, expiresInSeconds: 3600 })),
      ).toBe(400)
      expect(await get(await h.mint({ namespace: 'nobody', serviceAccount: 'nothing' }))).toBe(404)
      h.mock.setFaults({ errorRate: 1, errorStatus: 503 })
      expect(await get(await h.mint({ podName: 'five' }))).toBe(503)
      await h.mock.stop()
      expect(await get(await h.mint({ podName: 'down' }))).toBe(502)

      const logs = h.logs
      // the check below must see real lines: start-up, fetches, failures, and trace lines
      expect(logs.length).toBeGreaterThanOrEqual(10)
      expect(h.secrets.size).toBeGreaterThan(8)
      const haystacks = [
        ...logs,
        await h.metricsText(),
        ...bodies.filter((b) => b.includes('"Code"')),
      ]
      for (const secret of h.secrets) {
        for (const text of haystacks) {
          if (text.includes(secret)) throw new Error(`secret leaked into: ${text.slice(0, 200)}`)
        }
      }
      // the credential ids and digests are logged, so operators can correlate without secrets
      expect(logs.some((l) => l.includes('"tokenDigest"'))).toBe(true)
      // every line is one JSON object, the pre-serialised trace lines of cache hits included
      const parsed = logs.map((l) => JSON.parse(l) as Record<string, unknown>)
      for (const kind of ['hit', 'miss']) {
        const line = parsed.find((l) => l.event === 'served' && l.cache === kind)
        expect(line).toMatchObject({
          level: 'trace',
          namespace: 'default',
          serviceAccount: 'app',
          msg: 'served credentials',
        })
        expect(line?.tokenDigest).toMatch(/^[0-9a-f]{12}$/)
        expect(new Date(line?.time as string).toISOString()).toBe(line?.time)
      }
    } finally {
      await h.close()
    }
  })
})
