// The agent's 5xx answers (502, 503, 504, 500) as pods live with them: through the two real SDK
// clients, the AWS SDK for JavaScript's fromHttp and botocore's ContainerProvider (boto3, the AWS
// CLI). Each test asserts what a user sees (the error the SDK raises, or the credentials it ends
// with) and how many attempts the client made, counted by the agent's own
// pod_identity_http_response{code} and the mock's call counts.
//
// What the clients do, read in their source (the versions package.json pins; botocore 1.43.11):
// - fromHttp (@aws-sdk/credential-provider-http 3.972.86, dist-es/fromHttp/*.js):
//   - retry-wrapper.js retryWrapper: maxRetries (default 3) + 1 attempts, every error retried,
//     `timeout` ms (default 1000) of setTimeout between attempts; Retry-After is not read.
//   - requestHelpers.js getCredentials: a 4xx body's Code and Message are copied onto the error;
//     for any other status the error is only CredentialsProviderError("Server responded with
//     status: <code>"): the agent's JSON body of a 5xx never reaches the user.
//   - fromHttp.js passes `timeout` as the connection timeout and as requestTimeout, and
//     @smithy/node-http-handler 4.14.2 (set-request-timeout.js) only logs a WARN when the
//     requestTimeout passes (throwOnRequestTimeout is not set): the client waits for a slow
//     answer, so it sees the agent's 504 even with the default 1000 ms.
// - botocore (botocore/utils.py ContainerMetadataFetcher, botocore/credentials.py ContainerProvider):
//   - _get_response raises MetadataRetrievalError for any status but 200 (the message quotes the
//     body) and for read/connect timeouts and closed connections (RETRYABLE_HTTP_ERRORS);
//   - _retrieve_credentials retries every MetadataRetrievalError: RETRY_ATTEMPTS = 3 attempts,
//     sleeping SLEEP_TIME = 1 s after each failure (after the last one too), Retry-After unread;
//   - TIMEOUT_SECONDS = 2: the URLLib3Session's connect and read timeout of each attempt;
//   - ContainerProvider._create_fetcher turns the last failure into CredentialRetrievalError
//     "Error when retrieving credentials from container-role: Error retrieving metadata: ...".
//   botocore_fetch.py replaces the 1 s sleep (with nothing, or with a wait for an outcome) and
//   counts the sleeps; nothing else of botocore is changed.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { botocore } from '../helpers/botocore.js'
import type { Harness } from '../helpers/harness.js'
import { metricValue, rawGet, startHarness } from '../helpers/harness.js'
import { until } from '../helpers/until.js'

type SdkError = Error & { Code?: string; Message?: string }

/** fromHttp's rejection (the test fails if it resolves). */
async function sdkError(p: Promise<unknown>): Promise<SdkError> {
  const outcome = await p.then(
    () => undefined,
    (e: unknown) => e as SdkError,
  )
  if (outcome === undefined) throw new Error('fromHttp returned credentials; an error was expected')
  return outcome
}

/** The agent's answers so far, by status (pod_identity_http_response{code}). */
async function answers(h: Harness): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  const prefix = 'pod_identity_http_response{code="'
  for (const line of (await h.metricsText()).split('\n')) {
    if (!line.startsWith(prefix)) continue
    const code = line.slice(prefix.length, line.indexOf('"', prefix.length))
    out[code] = Number(line.slice(line.indexOf(' ') + 1))
  }
  return out
}

/** Answers given since `before`, by status; statuses with none left out. */
async function answersSince(
  h: Harness,
  before: Record<string, number>,
): Promise<Record<string, number>> {
  const now = await answers(h)
  const out: Record<string, number> = {}
  for (const [code, n] of Object.entries(now)) {
    const d = n - (before[code] ?? 0)
    if (d !== 0) out[code] = d
  }
  return out
}

async function answered(h: Harness, code: number): Promise<number> {
  return metricValue(await h.metricsText(), `pod_identity_http_response{code="${code}"}`) ?? 0
}

/** No token, key or session token of the harness, nor any 16-character piece of one, in `texts`. */
function expectNoSecrets(h: Harness, texts: readonly (string | undefined)[]): void {
  const seen = texts.filter((t): t is string => t !== undefined && t !== '')
  expect(seen.length).toBeGreaterThan(0)
  expect(h.secrets.size).toBeGreaterThan(2)
  for (const secret of h.secrets) {
    for (let i = 0; i + 16 <= secret.length; i++) {
      const piece = secret.slice(i, i + 16)
      const leaked = seen.find((t) => t.includes(piece))
      if (leaked !== undefined) throw new Error(`an SDK error quotes a secret: ${leaked}`)
    }
  }
}

function jsTexts(err: SdkError): (string | undefined)[] {
  return [err.message, err.stack, err.Code, err.Message]
}

/** botocore's text for a non-200 answer: the status and the agent's body, verbatim. */
function botocoreNon200(status: number): string {
  return (
    'Error when retrieving credentials from container-role: Error retrieving metadata: ' +
    `Received non 200 response ${status} from container metadata: `
  )
}

describe('502 UpstreamUnreachable: EKS Auth cannot be reached', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness({ startMock: false }) // the agent points at a closed port
  })
  afterAll(async () => {
    await h.close()
  })

  it('fromHttp (maxRetries 3, timeout 500) tries 4 times, each answered 502, and fails with the status alone', async () => {
    const file = await h.tokenFile(await h.mint({ podName: 'js-502' }))
    const before = await answers(h)
    const err = await sdkError(h.sdkFetch(file, { maxRetries: 3, timeout: 500 }))
    expect(err.name).toBe('CredentialsProviderError')
    expect(err.message).toBe('Server responded with status: 502')
    // fromHttp reads the body of a 4xx only: the agent's Code never reaches the user.
    expect(err.Code).toBeUndefined()
    expect(err.Message).toBeUndefined()
    expect(await answersSince(h, before)).toEqual({ '502': 4 })
    expectNoSecrets(h, jsTexts(err))
  })

  it('botocore tries 3 times, each answered 502, and raises CredentialRetrievalError quoting the JSON body', async () => {
    const file = await h.tokenFile(await h.mint({ podName: 'py-502' }))
    const before = await answers(h)
    const py = await botocore(h.url, file)
    expect(py.error).toBe('CredentialRetrievalError')
    expect(py.message).toBe(
      botocoreNon200(502) +
        '{"Code":"UpstreamUnreachable","Message":"unable to reach EKS Auth at 127.0.0.1:9: ECONNREFUSED"}',
    )
    expect(py.sleeps).toBe(3)
    expect(await answersSince(h, before)).toEqual({ '502': 3 })
    expectNoSecrets(h, [py.message])
  })
})

describe('502 then recovery: EKS Auth comes back between the client attempts', () => {
  // The mock destroys every API socket (`down`) until the agent has answered the first 502;
  // then it is healthy again, and the client's next attempt gets credentials.
  let h: Harness
  beforeAll(async () => {
    h = await startHarness({ mock: { faults: { down: true } } })
  })
  afterAll(async () => {
    await h.close()
  })

  async function upAfterFirst502(before: number): Promise<void> {
    await until(async () => (await answered(h, 502)) > before, 'the agent to answer 502')
    h.mock.setFaults({ down: false })
  }

  it('fromHttp with its defaults (3 retries, 1 s apart) ends with credentials on its second attempt', async () => {
    h.mock.setFaults({ down: true })
    h.mock.resetStats()
    const file = await h.tokenFile(await h.mint({ podName: 'js-recovers' }))
    const before = await answers(h)
    const fetching = h.sdkFetch(file, { maxRetries: 3, timeout: 1000 })
    // The flip happens within one poll of the 502, long before fromHttp's 1 s wait is over.
    await upAfterFirst502(before['502'] ?? 0)
    const creds = await fetching
    expect(creds.accessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/)
    expect(await answersSince(h, before)).toEqual({ '502': 1, '200': 1 })
    expect(h.mock.stats.byOutcome.SocketDestroyed).toBeGreaterThanOrEqual(1)
    expect(h.mock.stats.byOutcome.success).toBe(1)
  })

  it('botocore ends with credentials on its second attempt', async () => {
    h.mock.setFaults({ down: true })
    h.mock.resetStats()
    const file = await h.tokenFile(await h.mint({ podName: 'py-recovers' }))
    const before = await answers(h)
    // botocore's sleep after the first failure lasts until EKS Auth is back (its real 1 s).
    const up = upAfterFirst502(before['502'] ?? 0)
    const py = await botocore(h.url, file, { sleepUntil: up })
    await up
    expect(py.error).toBeUndefined()
    expect(py.access_key).toMatch(/^ASIA[A-Z2-7]{16}$/)
    expect(py.sleeps).toBe(1)
    expect(await answersSince(h, before)).toEqual({ '502': 1, '200': 1 })
    expect(h.mock.stats.byOutcome.success).toBe(1)
  })
})

/** The upstream's own 5xx, passed through: its code, and the message the mock sends with it. */
const PASSED_THROUGH = [
  [503, 'ServiceUnavailableException', 'Service is unavailable\\. Please try again later\\.'],
  [500, 'InternalServerException', 'An internal error occurred\\. Please try again\\.'],
] as const

for (const [status, code, upstreamMessage] of PASSED_THROUGH) {
  describe(`${status} ${code} from EKS Auth, passed through`, () => {
    let h: Harness
    beforeAll(async () => {
      h = await startHarness({ mock: { faults: { errorRate: 1, errorStatus: status } } })
    })
    afterAll(async () => {
      await h.close()
    })

    it.runIf(status === 503)(
      'the agent answers 503 with Retry-After: 1 (which neither SDK reads)',
      async () => {
        const res = await rawGet(h.url, {
          host: `127.0.0.1:${h.port}`,
          authorization: await h.mint({ podName: 'raw-503' }),
        })
        expect(res.status).toBe(503)
        expect(res.headers['retry-after']).toBe('1')
        expect((JSON.parse(res.body) as { Code: string }).Code).toBe(code)
      },
    )

    it(`fromHttp (maxRetries 3, timeout 500) tries 4 times, each answered ${status} after 3 upstream tries`, async () => {
      const file = await h.tokenFile(await h.mint({ podName: `js-${status}` }))
      const before = await answers(h)
      h.mock.resetStats()
      const err = await sdkError(h.sdkFetch(file, { maxRetries: 3, timeout: 500 }))
      expect(err.name).toBe('CredentialsProviderError')
      expect(err.message).toBe(`Server responded with status: ${status}`)
      expect(err.Code).toBeUndefined()
      expect(await answersSince(h, before)).toEqual({ [String(status)]: 4 })
      // Each client attempt is a new upstream call (failures are not cached), retried by the agent.
      expect(h.mock.stats.byOutcome).toEqual({ [code]: 12 })
      expectNoSecrets(h, jsTexts(err))
    })

    it(`botocore tries 3 times and raises CredentialRetrievalError quoting ${code} and its message`, async () => {
      const file = await h.tokenFile(await h.mint({ podName: `py-${status}` }))
      const before = await answers(h)
      h.mock.resetStats()
      const py = await botocore(h.url, file)
      expect(py.error).toBe('CredentialRetrievalError')
      expect(py.message).toContain(`${botocoreNon200(status)}{"Code":"${code}"`)
      expect(py.message).toMatch(
        new RegExp(
          `"Message":"\\[[0-9a-f-]+\\]: \\(${code}\\): ${upstreamMessage}, fault: server"\\}$`,
        ),
      )
      expect(py.sleeps).toBe(3)
      expect(await answersSince(h, before)).toEqual({ [String(status)]: 3 })
      expect(h.mock.stats.byOutcome).toEqual({ [code]: 9 })
      expectNoSecrets(h, [py.message])
    })
  })
}

describe('503 UpstreamThrottled: EKS Auth throttles the node, the call is queued', () => {
  // EKS Auth lets one call through (the first pod's) and throttles the next pod's: 429. The agent
  // paces its calls (1/s here), queues that call again and answers the pod 503 UpstreamThrottled
  // with Retry-After: 1. EKS Auth stops throttling once the agent has answered the 503; the queued
  // call runs when the pace allows, and the client's retry is answered from its result.
  async function throttledHarness(): Promise<{ h: Harness; file: string; lifted: Promise<void> }> {
    const h = await startHarness()
    h.mock.setFaults({ throttleQps: 0.001 }) // one call now, the next in 1000 s
    await h.sdkFetch(await h.tokenFile(await h.mint({ podName: 'first' })))
    const before = await answered(h, 503)
    // Lifted within one poll of the 503, long before the pace (1 s) starts the queued call.
    const lifted = until(async () => (await answered(h, 503)) > before, 'the 503').then(() => {
      h.mock.setFaults({ throttleQps: 0 })
    })
    return { h, file: await h.tokenFile(await h.mint({ podName: 'throttled' })), lifted }
  }

  it('fromHttp (maxRetries 3, timeout 1000: 1 s between attempts) gets 503 once, then credentials from the queued call', async () => {
    const { h, file, lifted } = await throttledHarness()
    try {
      const before = await answers(h)
      const creds = await h.sdkFetch(file, { maxRetries: 3, timeout: 1000 })
      await lifted
      expect(creds.accessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/)
      expect(await answersSince(h, before)).toEqual({ '503': 1, '200': 1 })
      // the first pod, the throttled try, the paced call whose result served the retry
      expect(h.mock.stats.byOutcome).toEqual({ success: 2, ThrottlingException: 1 })
    } finally {
      await h.close()
    }
  })

  it('botocore retries the 503 (it retries any non-200) and its second attempt gets credentials', async () => {
    const { h, file, lifted } = await throttledHarness()
    try {
      const before = await answers(h)
      // botocore sleeps 1 s after the 503, by when the pace (1/s) has let the queued call run;
      // here its sleep lasts until EKS Auth has answered that call.
      const ran = lifted.then(() =>
        until(() => h.mock.stats.byOutcome.success === 2, 'the queued call to run'),
      )
      const py = await botocore(h.url, file, { sleepUntil: ran })
      await ran
      expect(py.error).toBeUndefined()
      expect(py.access_key).toMatch(/^ASIA[A-Z2-7]{16}$/)
      expect(py.sleeps).toBe(1)
      expect(await answersSince(h, before)).toEqual({ '503': 1, '200': 1 })
      expect(h.mock.stats.byOutcome).toEqual({ success: 2, ThrottlingException: 1 })
    } finally {
      await h.close()
    }
  })
})

describe('504 UpstreamTimeout: EKS Auth does not answer', () => {
  let h: Harness
  beforeAll(async () => {
    h = await startHarness({ mock: { faults: { latencyMs: 10_000 } } })
  })
  afterAll(async () => {
    await h.close()
  })

  it('fromHttp sees 504 with a 5000 ms timeout, and with its default 1000 ms too (that timeout does not cut a slow answer)', async () => {
    const files = await Promise.all(
      ['js-504-long', 'js-504-default'].map(async (podName) =>
        h.tokenFile(await h.mint({ podName })),
      ),
    )
    const before = await answers(h)
    const errors = await Promise.all([
      sdkError(h.sdkFetch(files[0]!, { maxRetries: 0, timeout: 5000 })),
      sdkError(h.sdkFetch(files[1]!, { maxRetries: 0, timeout: 1000 })),
    ])
    for (const err of errors) {
      expect(err.name).toBe('CredentialsProviderError')
      expect(err.message).toBe('Server responded with status: 504')
      expectNoSecrets(h, jsTexts(err))
    }
    expect(await answersSince(h, before)).toEqual({ '504': 2 })
    // The agent answered within its 3 s budget (its own measure; the next bucket is 5 s).
    const text = await h.metricsText()
    const errorsAnswered = (le: string) =>
      metricValue(text, `pod_identity_request_duration_seconds_bucket{le="${le}",outcome="error"}`)
    expect(errorsAnswered('5')).toBe(errorsAnswered('+Inf'))
  })

  it("botocore, 3 attempts each: with a 5 s timeout it quotes the 504 body; with its own 2 s, the agent's ~2 s 504 races its read timeout", async () => {
    // The agent gives up after two 1 s attempts (a third would not fit its 3 s budget), about
    // 2 s after the request. With botocore's own timeout (2 s) its read timeout usually comes
    // first, and a retry that joins the call still in flight gets that call's 504 at once; what
    // the last attempt sees depends on which comes first. Every attempt gets one answer, a 504
    // (those botocore gave up on are written after it has gone). The two runs go side by side.
    const [longFile, ownFile] = await Promise.all(
      ['py-504-long', 'py-504-default'].map(async (podName) =>
        h.tokenFile(await h.mint({ podName })),
      ),
    )
    const before = await answers(h)
    const [long, own] = await Promise.all([
      botocore(h.url, longFile!, { timeoutSeconds: 5 }),
      botocore(h.url, ownFile!),
    ])
    const answer504 =
      botocoreNon200(504) +
      '{"Code":"UpstreamTimeout","Message":"EKS Auth did not answer within 1000 ms"}'
    const readTimeout =
      'Error when retrieving credentials from container-role: Error retrieving metadata: ' +
      'Received error when attempting to retrieve container metadata: ' +
      `Read timeout on endpoint URL: "${h.url}"`
    expect(long.error).toBe('CredentialRetrievalError')
    expect(long.message).toBe(answer504)
    expect(long.sleeps).toBe(3)
    expect(own.error).toBe('CredentialRetrievalError')
    expect([readTimeout, answer504]).toContain(own.message)
    expect(own.sleeps).toBe(3)
    await until(async () => (await answersSince(h, before))['504'] === 6, '6 answers of 504')
    expect(await answersSince(h, before)).toEqual({ '504': 6 })
    expectNoSecrets(h, [long.message, own.message])
  })
})
