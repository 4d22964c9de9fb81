// Composition root: config + injected dependencies -> running listeners, probes and metrics.
// Everything with I/O or time (fetcher, node credentials, clock, logger, registry) can be injected.

import { randomUUID } from 'node:crypto'
import { Registry } from 'prom-client'
import { CredentialCache } from './cache/credential-cache.js'
import type { ServerConfig } from './config/server-config.js'
import { describeConfig } from './config/server-config.js'
import type { AgentMetrics } from './metrics/metrics.js'
import { boundedCode, createMetrics } from './metrics/metrics.js'
import {
  createDefaultNodeCredentialsProvider,
  preloadDefaultNodeCredentials,
} from './node-credentials/default-chain.js'
import { createRotatingSharedFileProvider } from './node-credentials/rotating-shared-file.js'
import { createClientErrorHandler, createCredentialHandler } from './server/credential-handler.js'
import { HostCheck } from './server/host-check.js'
import type { BoundServer } from './server/listeners.js'
import { bindCredentialListeners, closeServer, listen } from './server/listeners.js'
import { createProbeHandler } from './server/probes.js'
import { EksAuthClient } from './upstream/eks-auth-client.js'
import { normalizeRegion, resolveEksAuthEndpoint } from './upstream/endpoint.js'
import type { CredentialFetcher, NodeCredentialsProvider } from './upstream/types.js'
import type { Clock } from './util/clock.js'
import { systemClock } from './util/clock.js'
import type { Logger } from './util/logger.js'
import { createLogger, linesDroppedBy } from './util/logger.js'
import { pinTickObjectMap } from './util/tick-object-map.js'
import { IdleHeapTrimmer, compileWasmWithLiftoffOnly, processHeap } from './util/v8-memory.js'
import { VERSION } from './version.js'

/** Delay before the miss path's modules are loaded in the background (see startAgent). */
const PRELOAD_DELAY_MS = 1000

export interface AgentDeps {
  clock?: Clock
  logger?: Logger
  registry?: Registry
  /** Replaces the EKS Auth client entirely (tests of the cache/server). */
  fetcher?: CredentialFetcher
  /** The node's own credentials; default: AWS default chain (or the rotating shared file). */
  nodeCredentials?: NodeCredentialsProvider
  /** Default process metrics (CPU, memory, event loop). Default true. */
  processMetrics?: boolean
  /** Environment for endpoint resolution. Default process.env. */
  env?: NodeJS.ProcessEnv
  /**
   * Give the young generation back once idle after a burst (src/util/v8-memory.ts), checking
   * every this many ms of real time; 0 turns it off. Default 5000.
   */
  idleHeapCheckMs?: number
}

export interface Address {
  host: string
  port: number
}

export interface RunningAgent {
  /** The credential listeners actually bound. */
  listeners: Address[]
  probe: Address
  metricsServer: Address
  /** Base URL of EKS Auth in use. */
  endpoint: string
  cache: CredentialCache
  metrics: AgentMetrics
  registry: Registry
  logger: Logger
  /** Stop accepting, finish in-flight requests (hard stop after graceMs), release everything. */
  close(graceMs?: number): Promise<void>
}

function addr(b: BoundServer): Address {
  return { host: b.host, port: b.port }
}

export async function startAgent(
  config: ServerConfig,
  deps: AgentDeps = {},
): Promise<RunningAgent> {
  // Before anything here can bring on a full GC (the CLI has done it already; see there).
  pinTickObjectMap()
  const clock = deps.clock ?? systemClock
  const logger = deps.logger ?? createLogger(config.verbosity)
  const registry = deps.registry ?? new Registry()
  const env = deps.env ?? process.env

  // eslint-disable-next-line prefer-const -- read by the metrics callback, assigned just below
  let cache: CredentialCache | undefined
  const metrics = createMetrics({
    registry,
    version: VERSION,
    cacheEntries: () => cache?.size ?? 0,
    upstreamQueue: () => cache?.upstreamQueue ?? { queued: 0, pacePerSecond: 0 },
    logLinesDropped: linesDroppedBy(logger),
    processMetrics: deps.processMetrics,
  })

  const endpoint = resolveEksAuthEndpoint({ region: config.region, endpoint: config.endpoint, env })
  let eksAuth: EksAuthClient | undefined
  let fetcher = deps.fetcher
  if (fetcher === undefined) {
    const nodeCredentials =
      deps.nodeCredentials ??
      (config.rotateCredentials
        ? createRotatingSharedFileProvider({ clock: systemClock })
        : createDefaultNodeCredentialsProvider())
    compileWasmWithLiftoffOnly()
    eksAuth = new EksAuthClient({
      clusterName: config.clusterName,
      region: normalizeRegion(config.region).region,
      endpoint,
      credentials: nodeCredentials,
      // Network timing (retry backoff, attempt durations) is real time; the injected clock drives
      // the cache and token checks, so tests can move it hours ahead without stalling I/O.
      clock: systemClock,
      onAttempt: (a) => {
        const outcome = a.outcome === 'success' ? 'success' : boundedCode(a.code)
        metrics.upstreamRequests.inc({ api: 'eks-auth', outcome })
        metrics.upstreamDuration.observe({ api: 'eks-auth', outcome }, a.durationMs / 1000)
      },
    })
    fetcher = eksAuth
  }

  cache = new CredentialCache({
    fetcher,
    clock,
    metrics,
    logger,
    maxEntries: config.maxCacheSize,
    maxRetentionMs: config.maxCredentialRetentionMs,
    refreshQps: config.maxServiceQps,
  })

  const selfCheckNonce = randomUUID()
  const handler = createCredentialHandler({
    cache,
    clock,
    hostCheck: new HostCheck(config.bindHosts, config.port),
    metrics,
    logger,
    selfCheckNonce,
  })

  const listeners = await bindCredentialListeners(handler, config.bindHosts, config.port, logger, {
    onClientError: createClientErrorHandler({ metrics, logger }),
    requireHostHeader: false,
  })
  let shuttingDown = false
  const probeHandler = createProbeHandler({
    targets: () => listeners.map(addr),
    selfCheckNonce,
    shuttingDown: () => shuttingDown,
  })
  const metricsHandler = createProbeHandler({
    targets: () => listeners.map(addr),
    selfCheckNonce,
    shuttingDown: () => shuttingDown,
    registry,
  })

  const extra: BoundServer[] = []
  try {
    extra.push(await listen(probeHandler, 'localhost', config.probePort))
    extra.push(await listen(metricsHandler, config.metricsAddress, config.metricsPort))
  } catch (err) {
    await Promise.all([...listeners, ...extra].map((b) => closeServer(b.server, 0)))
    await eksAuth?.close()
    const e = err as NodeJS.ErrnoException
    throw new Error(
      `cannot listen for ${extra.length === 0 ? `probes on localhost:${config.probePort}` : `metrics on ${config.metricsAddress}:${config.metricsPort}`}: ${e.code ?? e.message}`,
      { cause: err },
    )
  }
  const [probe, metricsServer] = extra as [BoundServer, BoundServer]

  logger.info(
    {
      event: 'started',
      version: VERSION,
      ...describeConfig(config),
      endpoint,
      listeners: listeners.map((b) => `${b.host.includes(':') ? `[${b.host}]` : b.host}:${b.port}`),
      probePort: probe.port,
      metricsPort: metricsServer.port,
    },
    'pod-identity-agent started',
  )
  // Warm the miss path (undici, the SigV4 signer, the SDK credential chain: about 130 ms of
  // synchronous module loading) once the agent has had time to answer its first readiness
  // probes: the first miss should not pay for it, and readiness should not wait for it. A miss
  // before then loads the same modules itself.
  const warm = systemClock.setTimer(() => {
    void eksAuth?.preload()
    if (
      deps.nodeCredentials === undefined &&
      deps.fetcher === undefined &&
      !config.rotateCredentials
    ) {
      void preloadDefaultNodeCredentials()
    }
  }, PRELOAD_DELAY_MS)

  const idleHeapCheckMs = deps.idleHeapCheckMs ?? 5000
  const heap = idleHeapCheckMs > 0 ? processHeap() : undefined
  const trimmer =
    heap &&
    new IdleHeapTrimmer({
      clock: systemClock,
      heap,
      intervalMs: idleHeapCheckMs,
      onCollect: (info) =>
        logger.debug({ event: 'idle_heap_trim', ...info }, 'idle: young generation collected'),
    })
  trimmer?.start()

  let closing: Promise<void> | undefined
  return {
    listeners: listeners.map(addr),
    probe: addr(probe),
    metricsServer: addr(metricsServer),
    endpoint,
    cache,
    metrics,
    registry,
    logger,
    close(graceMs = 25_000) {
      closing ??= (async () => {
        shuttingDown = true
        warm.cancel()
        trimmer?.stop()
        await Promise.all(listeners.map((b) => closeServer(b.server, graceMs)))
        await Promise.all([probe, metricsServer].map((b) => closeServer(b.server, 1000)))
        await eksAuth?.close()
        logger.info({ event: 'stopped' }, 'pod-identity-agent stopped')
      })()
      return closing
    },
  }
}
