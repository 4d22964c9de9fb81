// A primary credential source (EKS Auth) with a secondary one (STS) for when the primary cannot
// serve: unreachable, not answering within its budget (queueing in its gate included: a herd
// behind a dead upstream must not wait its turn to time out), failing with 5xx or an unusable
// answer, throttling, or without the node's credentials to sign with. Never when the primary has judged the
// request (an invalid or expired token, access denied, no association): that answer goes to the
// pod. A breaker sends new calls straight to the secondary while the primary keeps failing, and
// lets one call at a time probe the primary again every PROBE_EVERY_MS; a call that gets through
// closes it. Each switch is logged once.

import {
  CallDroppedError,
  InvalidUpstreamResponseError,
  NodeCredentialsError,
  QueueFullError,
  UpstreamError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
} from '../errors.js'
import type { Clock, TimerHandle } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import type { CredentialSource, FetchOptions, SourceAnswer } from './types.js'

/** Why a call went to the secondary (pod_identity_upstream_fallbacks_total{reason}). */
export type FallbackReason =
  | 'unreachable'
  | 'timeout'
  | 'server_error'
  | 'invalid_response'
  | 'throttled'
  | 'node_credentials'
  | 'breaker_open'

/** Consecutive failures of the primary that open the breaker. */
export const FAILURES_TO_OPEN = 3
/** While open, how often one call probes the primary again, ms. */
export const PROBE_EVERY_MS = 30_000

/** Why the primary's failure is the secondary's turn; undefined when the primary judged the call. */
export function fallbackReason(err: unknown): FallbackReason | undefined {
  if (err instanceof UpstreamUnreachableError) return 'unreachable'
  if (err instanceof UpstreamTimeoutError) return 'timeout'
  if (err instanceof InvalidUpstreamResponseError) return 'invalid_response'
  if (err instanceof NodeCredentialsError) return 'node_credentials'
  if (err instanceof QueueFullError) return 'throttled'
  if (err instanceof CallDroppedError) return undefined
  if (err instanceof UpstreamError) {
    if (err.statusCode === 429) return 'throttled'
    if (err.statusCode >= 500) return 'server_error'
  }
  return undefined
}

export interface FallbackOptions {
  clock: Clock
  logger: Logger
  /** How long the primary may take, queueing included, before the secondary is asked, ms. */
  primaryBudgetMs: number
  /** Names for the log lines, e.g. 'EKS Auth' and 'STS'. */
  names: [string, string]
  /** Told of every call sent to the secondary, with why. */
  onFallback?: (reason: FallbackReason) => void
  /** Told when the breaker opens (true) or closes (false). */
  onBreaker?: (open: boolean) => void
}

/**
 * The primary's call, or an UpstreamTimeoutError once its budget has passed. A call still queued
 * then is told to give up (its signal), and fails at once when its turn comes.
 */
function withinBudget(
  fetch: CredentialSource['fetch'],
  request: Parameters<CredentialSource['fetch']>[0],
  options: FetchOptions,
  o: FallbackOptions,
): Promise<SourceAnswer> {
  const ac = new AbortController()
  const onCallerAbort = (): void => ac.abort(options.signal?.reason)
  options.signal?.addEventListener('abort', onCallerAbort, { once: true })
  const call = fetch(request, { ...options, signal: ac.signal })
  call.catch(() => {}) // after the budget nobody awaits it
  let timer: TimerHandle | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = o.clock.setTimer(() => {
      const err = new UpstreamTimeoutError(
        `${o.names[0]} did not answer within ${o.primaryBudgetMs} ms`,
      )
      ac.abort(err)
      reject(err)
    }, o.primaryBudgetMs)
  })
  return Promise.race([call, deadline]).finally(() => {
    timer?.cancel()
    options.signal?.removeEventListener('abort', onCallerAbort)
  })
}

export function withFallback(
  primary: CredentialSource,
  secondary: CredentialSource,
  o: FallbackOptions,
): CredentialSource {
  const [first, second] = o.names
  let failures = 0
  let openSinceMs: number | undefined
  let nextProbeMs = 0
  let probing = false

  const open = (reason: FallbackReason): void => {
    if (openSinceMs !== undefined) return
    openSinceMs = o.clock.now()
    nextProbeMs = openSinceMs + PROBE_EVERY_MS
    o.logger.warn(
      { event: 'upstream_fallback_on', reason, failures },
      `${first} keeps failing (${reason}): new calls go to ${second}; ${first} is probed every ${PROBE_EVERY_MS / 1000} s`,
    )
    o.onBreaker?.(true)
  }
  const close = (): void => {
    failures = 0
    if (openSinceMs === undefined) return
    o.logger.info(
      { event: 'upstream_fallback_off', openForMs: o.clock.now() - openSinceMs },
      `${first} answers again: calls go to it`,
    )
    openSinceMs = undefined
    o.onBreaker?.(false)
  }
  const fallBack: CredentialSource['fetch'] = (request, options) =>
    secondary.fetch(request, options)

  return {
    async fetch(request, options = {}) {
      let probe = false
      if (openSinceMs !== undefined) {
        if (probing || o.clock.now() < nextProbeMs) {
          o.onFallback?.('breaker_open')
          return fallBack(request, options)
        }
        probe = true
        probing = true
        nextProbeMs = o.clock.now() + PROBE_EVERY_MS
      }
      try {
        const answer = await withinBudget(primary.fetch.bind(primary), request, options, o)
        close()
        return answer
      } catch (err) {
        const reason = fallbackReason(err)
        if (reason === undefined) {
          // The primary answered: it is up, whatever it said.
          if (err instanceof UpstreamError) close()
          throw err
        }
        failures++
        if (failures >= FAILURES_TO_OPEN) open(reason)
        o.onFallback?.(reason)
        return fallBack(request, options)
      } finally {
        if (probe) probing = false
      }
    },
    warmUp: () => Promise.all([primary.warmUp(), secondary.warmUp()]).then(() => undefined),
    close: () => Promise.all([primary.close(), secondary.close()]).then(() => undefined),
  }
}
