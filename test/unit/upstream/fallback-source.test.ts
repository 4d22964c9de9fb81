import { describe, expect, it } from 'vitest'
import {
  NodeCredentialsError,
  UpstreamError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
} from '../../../src/errors.js'
import type { CheckedToken } from '../../../src/token/validity.js'
import type { FallbackReason } from '../../../src/upstream/fallback-source.js'
import {
  FAILURES_TO_OPEN,
  PROBE_EVERY_MS,
  fallbackReason,
  withFallback,
} from '../../../src/upstream/fallback-source.js'
import type { CredentialSource, SourceAnswer } from '../../../src/upstream/types.js'
import { ManualClock } from '../../../src/util/clock.js'
import { createLogger } from '../../../src/util/logger.js'
import { flush, podCredentials } from '../../helpers/deferred-source.js'
import { logLines } from '../../helpers/log-lines.js'

const request = { token: 'a.b.c', claims: {} } as unknown as CheckedToken

/** A source that answers with what `next` says each call: credentials, or an error. */
function scripted(name: string) {
  const calls: string[] = []
  let next: () => SourceAnswer = () => podCredentials(name, Date.now() + 3_600_000)
  const source: CredentialSource = {
    fetch() {
      calls.push(name)
      try {
        return Promise.resolve(next())
      } catch (err) {
        return Promise.reject(err)
      }
    },
    warmUp: () => Promise.resolve(),
    close: () => Promise.resolve(),
  }
  return {
    source,
    calls,
    answers: () => (next = () => podCredentials(name, Date.now() + 3_600_000)),
    fails: (err: Error) =>
      (next = () => {
        throw err
      }),
  }
}

function setup() {
  const clock = new ManualClock()
  const eks = scripted('eks')
  const sts = scripted('sts')
  const reasons: FallbackReason[] = []
  const breaker: boolean[] = []
  const logs = logLines()
  const source = withFallback(eks.source, sts.source, {
    clock,
    logger: createLogger('info', logs),
    names: ['EKS Auth', 'STS'],
    primaryBudgetMs: 400,
    onFallback: (r) => reasons.push(r),
    onBreaker: (open) => breaker.push(open),
  })
  const fetch = async () => (await source.fetch(request)).credentials.accessKeyId
  return { clock, eks, sts, reasons, breaker, logs, fetch, source }
}

const throttled = new UpstreamError({
  statusCode: 429,
  code: 'ThrottlingException',
  message: 'x',
  irrecoverable: false,
})
const judged = (status: number, code: string) =>
  new UpstreamError({ statusCode: status, code, message: 'x', irrecoverable: true })

describe('fallbackReason', () => {
  it('falls back when EKS Auth cannot serve, never when it judged the request', () => {
    expect(fallbackReason(new UpstreamUnreachableError('refused'))).toBe('unreachable')
    expect(fallbackReason(new UpstreamTimeoutError('slow'))).toBe('timeout')
    expect(fallbackReason(new NodeCredentialsError('none'))).toBe('node_credentials')
    expect(fallbackReason(throttled)).toBe('throttled')
    expect(fallbackReason(judged(503, 'ServiceUnavailableException'))).toBe('server_error')
    for (const [status, code] of [
      [400, 'InvalidTokenException'],
      [400, 'ExpiredTokenException'],
      [400, 'AccessDeniedException'],
      [403, 'AccessDeniedException'],
      [404, 'ResourceNotFoundException'],
    ] as const) {
      expect(fallbackReason(judged(status, code))).toBeUndefined()
    }
  })
})

describe('withFallback', () => {
  it('asks STS when EKS Auth cannot serve, and passes on what EKS Auth judged', async () => {
    const s = setup()
    expect(await s.fetch()).toBe('ASIATESTeks')
    s.eks.fails(new UpstreamUnreachableError('refused'))
    expect(await s.fetch()).toBe('ASIATESTsts')
    expect(s.reasons).toEqual(['unreachable'])
    s.eks.fails(judged(404, 'ResourceNotFoundException'))
    await expect(s.fetch()).rejects.toMatchObject({ statusCode: 404 })
    expect(s.sts.calls).toHaveLength(1)
  })

  it(`opens after ${FAILURES_TO_OPEN} failures in a row (logged once), probes every ${PROBE_EVERY_MS / 1000} s, closes when EKS Auth answers`, async () => {
    const s = setup()
    s.eks.fails(new UpstreamTimeoutError('slow'))
    for (let i = 0; i < FAILURES_TO_OPEN; i++) expect(await s.fetch()).toBe('ASIATESTsts')
    expect(s.breaker).toEqual([true])
    const eksCalls = s.eks.calls.length
    for (let i = 0; i < 10; i++) await s.fetch()
    expect(s.eks.calls.length).toBe(eksCalls) // straight to STS while open
    expect(s.reasons.filter((r) => r === 'breaker_open')).toHaveLength(10)
    s.clock.advance(PROBE_EVERY_MS)
    await s.fetch() // a probe: EKS Auth still failing
    expect(s.eks.calls.length).toBe(eksCalls + 1)
    expect(s.breaker).toEqual([true])
    s.eks.answers()
    await s.fetch() // not yet time for the next probe
    expect(s.eks.calls.length).toBe(eksCalls + 1)
    s.clock.advance(PROBE_EVERY_MS)
    expect(await s.fetch()).toBe('ASIATESTeks') // the probe gets through: closed
    expect(s.breaker).toEqual([true, false])
    expect(await s.fetch()).toBe('ASIATESTeks')
    const events = s.logs.lines.map((l) => (JSON.parse(l) as { event: string }).event)
    expect(events.filter((e) => e === 'upstream_fallback_on')).toHaveLength(1)
    expect(events.filter((e) => e === 'upstream_fallback_off')).toHaveLength(1)
  })

  it('a judgement from EKS Auth counts as it being up', async () => {
    const s = setup()
    s.eks.fails(new UpstreamUnreachableError('refused'))
    await s.fetch()
    await s.fetch()
    s.eks.fails(judged(400, 'InvalidTokenException'))
    await expect(s.fetch()).rejects.toThrow()
    s.eks.fails(new UpstreamUnreachableError('refused'))
    await s.fetch()
    await s.fetch()
    expect(s.breaker).toEqual([]) // never 3 in a row
  })
})

describe('withFallback, the primary budget', () => {
  it('asks STS once EKS Auth has not answered within its budget, queueing included, and tells the queued call to give up', async () => {
    const clock = new ManualClock()
    let signal: AbortSignal | undefined
    const stuck: CredentialSource = {
      fetch: (_r, options) => {
        signal = options?.signal
        return new Promise(() => {}) // queued behind a dead upstream: never answers
      },
      warmUp: () => Promise.resolve(),
      close: () => Promise.resolve(),
    }
    const sts = scripted('sts')
    const reasons: FallbackReason[] = []
    const source = withFallback(stuck, sts.source, {
      clock,
      logger: createLogger('info', logLines()),
      names: ['EKS Auth', 'STS'],
      primaryBudgetMs: 400,
      onFallback: (r) => reasons.push(r),
    })
    let served: string | undefined
    void source.fetch(request).then((a) => (served = a.credentials.accessKeyId))
    clock.advance(399)
    await flush()
    expect(served).toBeUndefined()
    clock.advance(1)
    await flush()
    expect(served).toBe('ASIATESTsts')
    expect(reasons).toEqual(['timeout'])
    expect(signal?.aborted).toBe(true)
    expect(clock.pendingTimers).toBe(0)
  })
})
