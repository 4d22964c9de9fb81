// Composition root: configuration in; logger, metrics, one clock, the credential source, the
// cache and the servers built and connected. Whatever has I/O or time can be injected (tests).

import { Registry } from 'prom-client'
import { CredentialCache } from './cache/credential-cache.js'
import { entryScope } from './cache/entry-scope.js'
import type { ServerConfig } from './config/server-config.js'
import { describeConfig } from './config/server-config.js'
import type { AgentMetrics } from './metrics/metrics.js'
import { createMetrics } from './metrics/metrics.js'
import type { NodeCredentialsProvider } from './node-credentials/types.js'
import type { Address } from './server/servers.js'
import { startServers } from './server/servers.js'
import { createCredentialSource } from './upstream/credential-source.js'
import type { CredentialSource } from './upstream/types.js'
import type { IssuerKeys } from './token/issuer-keys.js'
import { openIssuerKeys } from './token/issuer-keys.js'
import { TokenVerifier } from './token/verify-token.js'
import type { Clock } from './util/clock.js'
import { systemClock } from './util/clock.js'
import type { Logger } from './util/logger.js'
import { createLogger, linesDroppedBy } from './util/logger.js'
import { VERSION } from './version.js'

/**
 * When the source warms up (loads undici, the signer and the node's credentials), ms after the
 * listeners are up: after the first readiness probes, which should not wait for that module
 * loading, and before most first misses.
 */
const WARM_UP_DELAY_MS = 1000

export interface AgentDeps {
  clock?: Clock
  logger?: Logger
  registry?: Registry
  /** The node's own credentials; default: the AWS default chain (or the rotating shared file). */
  nodeCredentials?: NodeCredentialsProvider
  /** Replaces the credential source the configuration chooses (tests of the cache and server). */
  source?: CredentialSource
  /** Default process metrics (CPU, memory, event loop). Default true. */
  processMetrics?: boolean
  /** Environment for endpoint resolution. Default process.env. */
  env?: NodeJS.ProcessEnv
}

export interface RunningAgent {
  /** The credential listeners actually bound. */
  listeners: Address[]
  probe: Address
  metricsServer: Address
  metrics: AgentMetrics
  registry: Registry
  logger: Logger
  /** Stop accepting, finish in-flight requests (hard stop after graceMs), release everything. */
  close(graceMs?: number): Promise<void>
}

export async function startAgent(
  config: ServerConfig,
  deps: AgentDeps = {},
): Promise<RunningAgent> {
  const clock = deps.clock ?? systemClock
  const logger = deps.logger ?? createLogger(config.verbosity)
  const registry = deps.registry ?? new Registry()
  const metrics = createMetrics({
    registry,
    version: VERSION,
    logLinesDropped: linesDroppedBy(logger),
    processMetrics: deps.processMetrics,
  })
  const keys = await openKeys(config, clock, logger)
  const { source, description, roleOf } =
    deps.source !== undefined
      ? { source: deps.source, description: { source: 'injected' }, roleOf: undefined }
      : await createCredentialSource(config, {
          clock,
          metrics,
          logger,
          env: deps.env ?? process.env,
          nodeCredentials: deps.nodeCredentials,
        }).catch(async (err: unknown) => {
          await keys?.close()
          throw err
        })
  const cache = new CredentialCache({
    source,
    clock,
    metrics,
    logger,
    maxEntries: config.maxCacheSize,
    maxRetentionMs: config.maxCredentialRetentionMs,
    refreshQps: config.maxServiceQps,
    refusalTtlMs: config.negativeCacheTtlMs,
  })
  const verifier =
    keys === undefined
      ? undefined
      : new TokenVerifier({
          keys,
          issuer: config.tokenIssuer as string,
          audience: config.tokenAudience,
          clock,
          logger,
          onResult: (result) => metrics.localValidation.inc({ result }),
        })
  const scope = entryScope({
    verifier,
    share: config.shareCredentials,
    clusterName: config.clusterName,
    roleOf,
  })
  const servers = await startServers({
    config,
    cache,
    scope,
    clock,
    metrics,
    registry,
    logger,
  }).catch(async (err: unknown) => {
    await source.close()
    await keys?.close()
    throw err
  })
  logger.info(
    {
      event: 'started',
      version: VERSION,
      ...describeConfig(config),
      ...description,
      listeners: servers.listeners.map(
        (a) => `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`,
      ),
      probePort: servers.probe.port,
      metricsPort: servers.metrics.port,
    },
    'pod-identity-agent started',
  )
  const warmUp = clock.setTimer(() => {
    void source.warmUp()
    void keys?.warmUp()
  }, WARM_UP_DELAY_MS)

  let closing: Promise<void> | undefined
  return {
    listeners: servers.listeners,
    probe: servers.probe,
    metricsServer: servers.metrics,
    metrics,
    registry,
    logger,
    close(graceMs = 25_000) {
      closing ??= (async () => {
        warmUp.cancel()
        await servers.close(graceMs)
        await source.close()
        await keys?.close()
        logger.info({ event: 'stopped' }, 'pod-identity-agent stopped')
      })()
      return closing
    },
  }
}

/** The issuer's keys when tokens are verified on the node (--token-jwks). */
async function openKeys(
  config: ServerConfig,
  clock: Clock,
  logger: Logger,
): Promise<IssuerKeys | undefined> {
  if (config.tokenJwks === undefined) return undefined
  const jwks = config.tokenJwks
  return openIssuerKeys({
    jwks,
    serviceAccountDir: config.tokenJwksServiceAccountDir,
    clock,
    onFileRejected: (reason) =>
      logger.warn(
        { event: 'token_jwks_rejected', path: jwks, error: reason },
        'kept the issuer keys as they were: the changed key file is not valid',
      ),
  })
}
