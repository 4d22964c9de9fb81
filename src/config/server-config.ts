// The agent's typed configuration: defaults as the reference agent's flags, validated once at
// start-up. Every problem is reported as one line naming the flag, the value and what is allowed.

import { isIP } from 'node:net'
import { formatDurationMs, parseDurationMs } from './duration.js'

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

export interface ServerConfig {
  /** EKS cluster name (path label of AssumeRoleForPodIdentity). Required. */
  clusterName: string
  /** Port of the credential listeners. Default 80. */
  port: number
  /** Addresses the credential listeners bind, without brackets. Default 169.254.170.23, fd00:ec2::23. */
  bindHosts: string[]
  /** Port of the probe server on localhost. Default 2703. */
  probePort: number
  /** Address of the metrics server. Default 0.0.0.0. */
  metricsAddress: string
  /** Port of the metrics server (also serves the probes). Default 2705. */
  metricsPort: number
  /** EKS Auth endpoint override (--endpoint); undefined = resolved from region and env. */
  endpoint: string | undefined
  /** Region used to sign and to resolve the EKS Auth endpoint (AWS_REGION / AWS_DEFAULT_REGION). */
  region: string
  /** LRU bound of the credential cache; 0 disables caching. Default 2000. */
  maxCacheSize: number
  /** Cached credentials are renewed at most this long after they were fetched; 0 disables caching. Default 3 h. */
  maxCredentialRetentionMs: number
  /** Rate limit of background refreshes towards EKS Auth, calls per second. Default 3. */
  maxServiceQps: number
  /** Re-read the shared credentials file for the node's own credentials (hybrid nodes). */
  rotateCredentials: boolean
  /** Log level. Default info. */
  verbosity: LogLevel
}

export const DEFAULT_BIND_HOSTS = ['169.254.170.23', 'fd00:ec2::23'] as const

/** Raw option values, flags over env vars; everything still a string. */
export interface RawServerOptions {
  clusterName?: string | undefined
  port?: string | undefined
  bindHosts?: string[] | undefined
  probePort?: string | undefined
  metricsAddress?: string | undefined
  metricsPort?: string | undefined
  endpoint?: string | undefined
  maxCacheSize?: string | undefined
  maxCredentialRetention?: string | undefined
  maxServiceQps?: string | undefined
  rotateCredentials?: boolean | undefined
  verbosity?: string | undefined
}

/** A configuration problem: main prints the message on one line and exits 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

const CLUSTER_NAME = /^[0-9A-Za-z][A-Za-z0-9\-_]*$/

function parsePort(flag: string, value: string | undefined, dflt: number): number {
  if (value === undefined) return dflt
  if (!/^\d+$/.test(value) || Number(value) > 65535) {
    throw new ConfigError(`--${flag}: "${value}" is not a port; expected an integer 0-65535`)
  }
  return Number(value)
}

function parseNonNegativeInt(flag: string, value: string | undefined, dflt: number): number {
  if (value === undefined) return dflt
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new ConfigError(`--${flag}: "${value}" is not a whole number; expected an integer >= 0`)
  }
  return Number(value)
}

/** Strip the brackets of an IPv6 literal ("[fd00:ec2::23]" -> "fd00:ec2::23"). */
export function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
}

function parseBindHost(value: string): string {
  const host = stripBrackets(value.trim())
  if (host === 'localhost') return host
  const family = isIP(host)
  if (family === 0) {
    throw new ConfigError(
      `--bind-hosts: "${value}" is not an IP address; expected an IPv4 or IPv6 literal such as 169.254.170.23 or [fd00:ec2::23]`,
    )
  }
  if (host === '0.0.0.0' || host === '::' || /^0*:(0*:)*0*$/.test(host)) {
    throw new ConfigError(
      `--bind-hosts: "${value}" is a wildcard address; bind the agent to the specific addresses pods call (the Host check compares against them)`,
    )
  }
  return host.toLowerCase()
}

function parseLogLevel(value: string | undefined): LogLevel {
  if (value === undefined) return 'info'
  const v = value.toLowerCase()
  // logrus names accepted by the reference agent's -v flag
  if (v === 'warning') return 'warn'
  if (v === 'panic') return 'fatal'
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel
  throw new ConfigError(
    `--verbosity: "${value}" is not a log level; expected one of ${LOG_LEVELS.join(', ')}`,
  )
}

function parseEndpoint(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ConfigError(
      `--endpoint: "${value}" is not a URL; expected e.g. https://eks-auth.us-west-2.api.aws`,
    )
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigError(`--endpoint: "${value}" must be an http:// or https:// URL`)
  }
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new ConfigError(
      `--endpoint: "${value}" must not carry credentials, a query or a fragment`,
    )
  }
  return value.replace(/\/+$/, '')
}

/** Validate raw options and the environment into a ServerConfig. Throws ConfigError. */
export function buildServerConfig(raw: RawServerOptions, env: NodeJS.ProcessEnv): ServerConfig {
  const clusterName = raw.clusterName?.trim() ?? ''
  if (clusterName === '') {
    throw new ConfigError('--cluster-name is required (the EKS cluster this node belongs to)')
  }
  if (clusterName.length > 100 || !CLUSTER_NAME.test(clusterName)) {
    throw new ConfigError(
      `--cluster-name: "${clusterName}" is not a valid EKS cluster name; expected 1-100 characters of letters, digits, '-' and '_', starting with a letter or digit`,
    )
  }

  const bindHosts = (raw.bindHosts ?? [...DEFAULT_BIND_HOSTS]).flatMap((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  )
  if (bindHosts.length === 0) {
    throw new ConfigError('--bind-hosts: at least one address is required')
  }
  const hosts = [...new Set(bindHosts.map(parseBindHost))]

  const port = parsePort('port', raw.port, 80)
  const probePort = parsePort('probe-port', raw.probePort, 2703)
  const metricsPort = parsePort('metrics-port', raw.metricsPort, 2705)
  if (probePort !== 0 && probePort === metricsPort) {
    throw new ConfigError(
      `--probe-port and --metrics-port are both ${probePort}; they must differ (the metrics server also serves the probes)`,
    )
  }

  const metricsAddress = stripBrackets((raw.metricsAddress ?? '0.0.0.0').trim())
  if (
    metricsAddress === '' ||
    (isIP(metricsAddress) === 0 && !/^[A-Za-z0-9.-]+$/.test(metricsAddress))
  ) {
    throw new ConfigError(
      `--metrics-address: "${raw.metricsAddress}" is not an address or host name`,
    )
  }

  const maxCacheSize = parseNonNegativeInt('max-cache-size', raw.maxCacheSize, 2000)

  let maxCredentialRetentionMs = 3 * 3_600_000
  if (raw.maxCredentialRetention !== undefined) {
    const ms = parseDurationMs(raw.maxCredentialRetention)
    if (ms === undefined) {
      throw new ConfigError(
        `--max-credential-retention-before-renewal: "${raw.maxCredentialRetention}" is not a duration; expected e.g. 3h, 90m, 1h30m or 0 (0 disables caching)`,
      )
    }
    maxCredentialRetentionMs = ms
  }

  let maxServiceQps = 3
  if (raw.maxServiceQps !== undefined) {
    const qps = Number(raw.maxServiceQps)
    if (raw.maxServiceQps.trim() === '' || !Number.isFinite(qps) || qps <= 0) {
      throw new ConfigError(
        `--max-service-qps: "${raw.maxServiceQps}" is not a rate; expected a number of calls per second > 0`,
      )
    }
    maxServiceQps = qps
  }

  const endpoint = parseEndpoint(raw.endpoint)
  const verbosity = parseLogLevel(raw.verbosity)

  // Checked after the flags, so a bad flag is reported as itself wherever the agent runs.
  // An empty AWS_REGION counts as unset, as in the AWS SDKs.
  const region = (env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim()) ?? ''
  if (region === '') {
    throw new ConfigError(
      'no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) to the region of the cluster, e.g. AWS_REGION=us-west-2',
    )
  }
  if (!/^[a-z0-9-]+$/.test(region)) {
    throw new ConfigError(`AWS_REGION: "${region}" is not a region name; expected e.g. us-west-2`)
  }

  return {
    clusterName,
    port,
    bindHosts: hosts,
    probePort,
    metricsAddress,
    metricsPort,
    endpoint,
    region,
    maxCacheSize,
    maxCredentialRetentionMs,
    maxServiceQps,
    rotateCredentials: raw.rotateCredentials ?? false,
    verbosity,
  }
}

/** One line describing the effective configuration (for the start-up log). */
export function describeConfig(c: ServerConfig): Record<string, unknown> {
  return {
    clusterName: c.clusterName,
    region: c.region,
    port: c.port,
    bindHosts: c.bindHosts,
    probePort: c.probePort,
    metrics: `${c.metricsAddress}:${c.metricsPort}`,
    endpoint: c.endpoint ?? '(default)',
    maxCacheSize: c.maxCacheSize,
    maxCredentialRetention: formatDurationMs(c.maxCredentialRetentionMs),
    maxServiceQps: c.maxServiceQps,
    rotateCredentials: c.rotateCredentials,
  }
}
