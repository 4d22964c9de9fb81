// Every server the agent runs, started and closed together: a credential listener per bind host
// (each bound on its own), the probe server on localhost, and the metrics server (which also
// serves the probes). Readiness fails from the moment shutdown begins, so traffic drains.

import { randomUUID } from 'node:crypto'
import type { Registry } from 'prom-client'
import type { CredentialCache } from '../cache/credential-cache.js'
import type { ScopedRequest } from '../cache/entry-scope.js'
import type { CheckedToken } from '../token/validity.js'
import type { ServerConfig } from '../config/server-config.js'
import type { AgentMetrics } from '../metrics/metrics.js'
import type { Clock } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import { ClientLimits } from './client-limits.js'
import { createCredentialHandler, newTurnShare } from './credential-handler.js'
import {
  createClientErrorHandler,
  createConnectHandler,
  createExpectationHandler,
} from './early-refusals.js'
import { HostCheck } from './host-check.js'
import type { BoundServer } from './listeners.js'
import { bindCredentialListeners, closeServer, drainServer, listen } from './listeners.js'
import { createProbeHandler } from './probes.js'

export interface Address {
  host: string
  port: number
}

export interface ServersOptions {
  config: Pick<
    ServerConfig,
    | 'bindHosts'
    | 'port'
    | 'probePort'
    | 'metricsAddress'
    | 'metricsPort'
    | 'clientMissRate'
    | 'clientMaxConnections'
    | 'maxRequestRate'
  >
  cache: CredentialCache
  /** Which entry a checked token reads and fills (entry-scope.ts). */
  scope: (request: CheckedToken) => Promise<ScopedRequest>
  clock: Clock
  metrics: AgentMetrics
  registry: Registry
  logger: Logger
}

export interface AgentServers {
  /** The credential listeners actually bound. */
  listeners: Address[]
  probe: Address
  metrics: Address
  /** Stop accepting, finish in-flight requests (hard stop after graceMs), close every server. */
  close(graceMs: number): Promise<void>
}

function addressOf(b: BoundServer): Address {
  return { host: b.host, port: b.port }
}

/** Throws when no credential listener can be bound, or the probe or metrics port cannot. */
export async function startServers(o: ServersOptions): Promise<AgentServers> {
  const { config, metrics, logger } = o
  // Sent by the readiness self-check, so that its 404s are not counted as pod traffic.
  const selfCheckNonce = randomUUID()
  const limits = new ClientLimits({
    clock: o.clock,
    metrics,
    missRate: config.clientMissRate,
    maxConnections: config.clientMaxConnections,
    requestRate: config.maxRequestRate,
  })
  const lifecycle = { draining: false }
  const turns = newTurnShare()
  const handler = createCredentialHandler({
    cache: o.cache,
    scope: o.scope,
    clock: o.clock,
    hostCheck: new HostCheck(config.bindHosts, config.port),
    limits,
    turns,
    lifecycle,
    metrics,
    logger,
    selfCheckNonce,
  })
  const listeners = await bindCredentialListeners(handler, config.bindHosts, config.port, logger, {
    onClientError: createClientErrorHandler({ metrics, logger }),
    onConnect: createConnectHandler({ metrics }),
    onExpectation: createExpectationHandler({ metrics }),
    requireHostHeader: false,
    onConnection: (socket) => {
      turns.connected()
      limits.admitConnection(socket)
    },
  })
  const probes = {
    targets: () => listeners.map(addressOf),
    selfCheckNonce,
    shuttingDown: () => lifecycle.draining,
    onReadiness: (ready: boolean) => metrics.ready.set(ready ? 1 : 0),
  }
  const others: BoundServer[] = []
  try {
    others.push(await listen(createProbeHandler(probes), 'localhost', config.probePort))
    others.push(
      await listen(
        createProbeHandler({ ...probes, registry: o.registry }),
        config.metricsAddress,
        config.metricsPort,
      ),
    )
  } catch (err) {
    await Promise.all([...listeners, ...others].map((b) => closeServer(b.server, 0)))
    const what =
      others.length === 0
        ? `probes on localhost:${config.probePort}`
        : `metrics on ${config.metricsAddress}:${config.metricsPort}`
    const e = err as NodeJS.ErrnoException
    throw new Error(`cannot listen for ${what}: ${e.code ?? e.message}`, { cause: err })
  }
  const [probeServer, metricsServer] = others as [BoundServer, BoundServer]
  return {
    listeners: listeners.map(addressOf),
    probe: addressOf(probeServer),
    metrics: addressOf(metricsServer),
    async close(graceMs) {
      lifecycle.draining = true
      limits.releaseHeld()
      await Promise.all(listeners.map((b) => drainServer(b.server, graceMs)))
      await Promise.all(others.map((b) => closeServer(b.server, 1000)))
    },
  }
}
