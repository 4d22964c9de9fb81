// Chooses and builds the agent's credential source from its configuration. Today that is EKS
// Auth, signed with the node's own credentials, behind the upstream gate; its HTTP attempts are
// counted under api="eks-auth". The cache and the server only ever see a CredentialSource.

import type { ServerConfig } from '../config/server-config.js'
import type { AgentMetrics } from '../metrics/metrics.js'
import { createDefaultNodeCredentialsProvider } from '../node-credentials/default-chain.js'
import { createRotatingSharedFileProvider } from '../node-credentials/rotating-shared-file.js'
import type { NodeCredentialsProvider } from '../node-credentials/types.js'
import type { Clock } from '../util/clock.js'
import type { EksAuthAttempt } from './eks-auth-client.js'
import { EksAuthClient } from './eks-auth-client.js'
import { normalizeRegion, resolveEksAuthEndpoint } from './endpoint.js'
import { boundedCode } from './error-codes.js'
import { gated } from './gated-source.js'
import type { CredentialSource } from './types.js'

export interface CredentialSourceDeps {
  clock: Clock
  metrics: AgentMetrics
  /** Environment for endpoint resolution (AWS_ENDPOINT_URL_EKS_AUTH, FIPS). */
  env: NodeJS.ProcessEnv
  /** The node's own credentials; default: the AWS default chain, or the shared file it re-reads. */
  nodeCredentials?: NodeCredentialsProvider | undefined
}

export interface BuiltSource {
  source: CredentialSource
  /** For the start-up log line: which upstream, at which endpoint. */
  description: Record<string, string>
}

/** Counts each HTTP attempt of one upstream API: calls and durations by outcome. */
function countAttempts(metrics: AgentMetrics, api: string): (a: EksAuthAttempt) => void {
  return (a) => {
    const outcome = a.outcome === 'success' ? 'success' : boundedCode(a.code)
    metrics.upstreamRequests.inc({ api, outcome })
    metrics.upstreamDuration.observe({ api, outcome }, a.durationMs / 1000)
  }
}

/** Throws ConfigError when the endpoint cannot be resolved (bad env var, FIPS with an override). */
export function createCredentialSource(
  config: ServerConfig,
  deps: CredentialSourceDeps,
): BuiltSource {
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
  const eksAuth = new EksAuthClient({
    clusterName: config.clusterName,
    region: normalizeRegion(config.region).region,
    endpoint,
    credentials: nodeCredentials,
    clock: deps.clock,
    onAttempt: countAttempts(deps.metrics, 'eks-auth'),
  })
  return {
    source: gated(eksAuth, { clock: deps.clock, metrics: deps.metrics }),
    description: { source: 'eks-auth', endpoint },
  }
}
