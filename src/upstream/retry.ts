// How an upstream client retries one call: only what can heal by itself (connection errors,
// timeouts, 500/502/503/504), never a 4xx (so throttling is never amplified), with jittered
// exponential backoff, and never starting an attempt that could not finish within the call's
// total budget. The EKS Auth and STS clients both follow it.

import {
  AgentError,
  UpstreamError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
} from '../errors.js'
import type { Clock } from '../util/clock.js'

/** HTTP statuses worth another attempt (the SDKs' standard retryer set). Never a 4xx. */
const RETRYABLE_STATUS: ReadonlySet<number> = new Set([500, 502, 503, 504])
const BACKOFF_BASE_MS = 50
const BACKOFF_CAP_MS = 400

export interface RetryPolicy {
  clock: Clock
  /** Most attempts, the first included. */
  maxAttempts: number
  /** Budget of one attempt, ms. */
  attemptTimeoutMs: number
  /** No attempt starts that could not finish within this many ms of the call's start. */
  totalTimeoutMs: number
  /** Source of [0, 1) numbers for backoff jitter. */
  random: () => number
}

/** Whether a failed attempt is worth another. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof UpstreamError) return RETRYABLE_STATUS.has(err.statusCode)
  return err instanceof UpstreamUnreachableError || err instanceof UpstreamTimeoutError
}

/** What a caller's abort turns into: its own AgentError reason, else a generic timeout. */
export function callerAbortError(signal: AbortSignal, upstream: string): AgentError {
  const reason: unknown = signal.reason
  if (reason instanceof AgentError) return reason
  return new UpstreamTimeoutError(`the ${upstream} call was aborted by the caller`, {
    cause: reason,
  })
}

/**
 * Run `attempt(n)` (n from 1) until it succeeds, fails for good, or the policy says stop; the
 * last error is thrown. `signal` stops the call at once with callerAbortError.
 */
export async function withRetries<T>(
  p: RetryPolicy,
  upstream: string,
  attempt: (n: number) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const start = p.clock.monotonicMs()
  for (let n = 1; ; n++) {
    if (signal?.aborted) throw callerAbortError(signal, upstream)
    try {
      return await attempt(n)
    } catch (err) {
      if (signal?.aborted) throw callerAbortError(signal, upstream)
      if (!isRetryable(err) || n >= p.maxAttempts) throw err
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (n - 1))
      const delay = Math.floor(p.random() * ceiling)
      const elapsed = p.clock.monotonicMs() - start
      if (elapsed + delay + p.attemptTimeoutMs > p.totalTimeoutMs) throw err
      await sleep(p.clock, delay, upstream, signal)
    }
  }
}

/**
 * One attempt's signal: aborted once the policy's attempt budget has passed or when the caller's
 * signal aborts. `release()` cancels the timer and unhooks the caller's signal.
 */
export function attemptSignal(
  p: RetryPolicy,
  caller?: AbortSignal,
): { signal: AbortSignal; release: () => void } {
  const ac = new AbortController()
  const timer = p.clock.setTimer(() => ac.abort(), p.attemptTimeoutMs)
  const onCallerAbort = (): void => ac.abort()
  caller?.addEventListener('abort', onCallerAbort, { once: true })
  return {
    signal: ac.signal,
    release: () => {
      timer.cancel()
      caller?.removeEventListener('abort', onCallerAbort)
    },
  }
}

function sleep(clock: Clock, ms: number, upstream: string, signal?: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      handle.cancel()
      reject(callerAbortError(signal as AbortSignal, upstream))
    }
    const handle = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
