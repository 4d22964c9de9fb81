// Chooses and builds the agent's credential source from its configuration (--credential-source):
// - eks-auth: EKS Auth, signed with the node's own credentials;
// - sts: STS AssumeRoleWithWebIdentity with the pod's token, roles from the associations file;
// - eks-auth-then-sts: EKS Auth, with STS when it cannot serve (fallback-source.ts); EKS Auth then
//   gets one short attempt, so that a pod's first SDK attempt (1 s) is answered by STS.
// Each upstream has its own gate (its own quota and pace); attempts are counted by `api`. The
// cache and the server only ever see a CredentialSource.

import { AssociationsStore } from '../associations/associations-store.js'
import { AssociationsError } from '../associations/associations.js'
import type { ServerConfig } from '../config/server-config.js'
import { ConfigError } from '../config/values.js'
import type { AgentMetrics } from '../metrics/metrics.js'
import { createDefaultNodeCredentialsProvider } from '../node-credentials/default-chain.js'
import { createRotatingSharedFileProvider } from '../node-credentials/rotating-shared-file.js'
import type { NodeCredentialsProvider } from '../node-credentials/types.js'
import type { Clock } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import { EksAuthClient } from './eks-auth-client.js'
import { normalizeRegion, resolveEksAuthEndpoint } from './endpoint.js'
import { boundedCode } from './error-codes.js'
import { withFallback } from './fallback-source.js'
import { gated } from './gated-source.js'
import { StsSource } from './sts-source.js'
import type { CredentialSource } from './types.js'

/** With a fallback, EKS Auth may take this long (its gate's queue included) before STS is asked, ms. */
export const FALLBACK_AFTER_MS = 400

export interface CredentialSourceDeps {
  clock: Clock
  metrics: AgentMetrics
  logger: Logger
  /** Environment for endpoint resolution (AWS_ENDPOINT_URL_EKS_AUTH, FIPS). */
  env: NodeJS.ProcessEnv
  /** The node's own credentials; default: the AWS default chain, or the shared file it re-reads. */
  nodeCredentials?: NodeCredentialsProvider | undefined
}

export interface BuiltSource {
  source: CredentialSource
  /** For the start-up log line: which upstreams, at which endpoints. */
  description: Record<string, string>
  /**
   * The role the agent itself picks for a service account (the associations file of an STS
   * source), so that credentials shared per association are keyed by it too.
   */
  roleOf?: ((namespace: string, serviceAccount: string) => string | undefined) | undefined
}

/** Counts each HTTP attempt of one upstream API: calls and durations by outcome. */
function countAttempts(
  metrics: AgentMetrics,
  api: string,
): (a: { outcome: 'success' | 'error'; code?: string | undefined; durationMs: number }) => void {
  return (a) => {
    const outcome = a.outcome === 'success' ? 'success' : boundedCode(a.code)
    metrics.upstreamRequests.inc({ api, outcome })
    metrics.upstreamDuration.observe({ api, outcome }, a.durationMs / 1000)
  }
}

function eksAuthSource(
  config: ServerConfig,
  deps: CredentialSourceDeps,
  fallback: boolean,
): { source: CredentialSource; endpoint: string } {
  const endpoint = resolveEksAuthEndpoint({
    region: config.region,
    endpoint: config.endpoint,
    env: deps.env,
  })
  const nodeCredentials =
    deps.nodeCredentials ??
    (config.rotateCredentials
      ? createRotatingSharedFileProvider({ clock: deps.clock })
      : createDefaultNodeCredentialsProvider())
  const client = new EksAuthClient({
    clusterName: config.clusterName as string,
    region: normalizeRegion(config.region).region,
    endpoint,
    credentials: nodeCredentials,
    clock: deps.clock,
    onAttempt: countAttempts(deps.metrics, 'eks-auth'),
    ...(fallback
      ? {
          attemptTimeoutMs: FALLBACK_AFTER_MS,
          maxAttempts: 1,
          totalTimeoutMs: FALLBACK_AFTER_MS,
        }
      : {}),
  })
  return {
    source: gated(client, { clock: deps.clock, metrics: deps.metrics, api: 'eks-auth' }),
    endpoint,
  }
}

/** The associations file, loaded (a bad one stops start-up) and re-read when it changes. */
async function openAssociations(
  path: string,
  deps: CredentialSourceDeps,
): Promise<AssociationsStore> {
  const { metrics, logger } = deps
  try {
    return await AssociationsStore.open({
      path,
      clock: deps.clock,
      onLoaded: (entries, atMs) => {
        metrics.associationsEntries.set(entries)
        metrics.associationsLoaded.set(atMs / 1000)
        logger.info({ event: 'associations_loaded', path, entries }, 'loaded the associations file')
      },
      onRejected: (reason) => {
        metrics.associationsReloadFailures.inc()
        logger.warn(
          { event: 'associations_rejected', path, error: reason },
          'kept the associations as they were: the changed file is not valid',
        )
      },
    })
  } catch (err) {
    if (err instanceof AssociationsError)
      throw new ConfigError(`--associations-file ${err.message}`)
    throw err
  }
}

/**
 * Throws ConfigError when the configuration cannot work: an EKS Auth endpoint that cannot be
 * resolved, an associations file that cannot be read or is not valid.
 */
export async function createCredentialSource(
  config: ServerConfig,
  deps: CredentialSourceDeps,
): Promise<BuiltSource> {
  const mode = config.credentialSource
  if (mode === 'eks-auth') {
    const eks = eksAuthSource(config, deps, false)
    return { source: eks.source, description: { source: mode, endpoint: eks.endpoint } }
  }
  const eks = mode === 'eks-auth-then-sts' ? eksAuthSource(config, deps, true) : undefined
  const store = await openAssociations(config.associationsFile as string, deps)
  const sts = gated(
    new StsSource({
      region: normalizeRegion(config.region).region,
      endpoint: config.stsEndpoint,
      associations: store,
      clusterName: config.clusterName,
      defaultDurationSeconds: config.stsDurationSeconds,
      clock: deps.clock,
      onAttempt: countAttempts(deps.metrics, 'sts'),
    }),
    { clock: deps.clock, metrics: deps.metrics, api: 'sts' },
  )
  const stsEndpoint =
    config.stsEndpoint ?? deps.env.AWS_ENDPOINT_URL_STS ?? `(region ${config.region})`
  const source =
    eks === undefined
      ? sts
      : withFallback(eks.source, sts, {
          clock: deps.clock,
          logger: deps.logger,
          names: ['EKS Auth', 'STS'],
          primaryBudgetMs: FALLBACK_AFTER_MS,
          onFallback: (reason) => deps.metrics.upstreamFallbacks.inc({ reason }),
          onBreaker: (open) => deps.metrics.upstreamBreakerOpen.set(open ? 1 : 0),
        })
  return {
    source: {
      fetch: (request, options) => source.fetch(request, options),
      warmUp: () => source.warmUp(),
      close: async () => {
        store.close()
        await source.close()
      },
    },
    roleOf: (namespace, serviceAccount) => store.find(namespace, serviceAccount)?.roleArn,
    description: {
      source: mode,
      ...(eks !== undefined ? { endpoint: eks.endpoint } : {}),
      stsEndpoint,
      associationsFile: config.associationsFile as string,
    },
  }
}
