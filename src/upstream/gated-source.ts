// A credential source behind the upstream gate: its calls are paced and queued as the gate
// decides (upstream-gate.ts), a queued call is dropped if the pod's token expires before it can
// start, and the gate's queue length, pace, refusals and dropped calls are published as metrics.

import { CallDroppedError, QueueFullError, TooManyRequestsError, UpstreamError } from '../errors.js'
import type { AgentMetrics } from '../metrics/metrics.js'
import { checkNotExpired } from '../token/validity.js'
import type { Clock } from '../util/clock.js'
import type { CredentialSource } from './types.js'
import { UpstreamGate } from './upstream-gate.js'

export interface GateOptions {
  clock: Clock
  /** The upstream's name in metric labels: eks-auth, sts. */
  api: string
  metrics: Pick<
    AgentMetrics,
    'upstreamQueueLength' | 'upstreamPace' | 'requestsLimited' | 'upstreamCallsDropped'
  >
  /** Upstream calls in flight at first (slow start) and at most. Defaults 8 and 32. */
  initialWindow?: number | undefined
  maxWindow?: number | undefined
}

function isThrottle(err: unknown): boolean {
  return err instanceof UpstreamError && err.statusCode === 429
}

/** The upstream took the call and refused the token (a forged one, say): not throttled. */
function isAccepted(err: unknown): boolean {
  return err instanceof UpstreamError && err.statusCode < 500 && err.statusCode !== 429
}

export function gated(inner: CredentialSource, o: GateOptions): CredentialSource {
  const gate: UpstreamGate = new UpstreamGate({
    clock: o.clock,
    isThrottle,
    isAccepted,
    initialWindow: o.initialWindow,
    maxWindow: o.maxWindow,
    onFull: () => new QueueFullError(),
    onRequesterFull: (): Error => {
      o.metrics.requestsLimited.inc({ reason: 'queue' })
      return new TooManyRequestsError(
        'Too many calls for new credentials from this pod are already queued while EKS Auth throttles this node',
        gate.pacePerSecond > 0 ? 1000 / gate.pacePerSecond : 1000,
      )
    },
    onDropped: () => {
      o.metrics.upstreamCallsDropped.inc()
      return new CallDroppedError()
    },
    onState: (queued, pace) => {
      o.metrics.upstreamQueueLength.set({ api: o.api }, queued)
      o.metrics.upstreamPace.set({ api: o.api }, pace)
    },
  })
  return {
    fetch(request, options = {}) {
      return gate.submit(() => inner.fetch(request, options), {
        background: options.background === true,
        ticket: options.ticket,
        requester: options.requester,
        beforeStart: () => checkNotExpired(request.claims, o.clock.now()),
      }).promise
    },
    warmUp: () => inner.warmUp(),
    close: () => inner.close(),
  }
}
