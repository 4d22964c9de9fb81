// The agent's typed configuration: defaults as the reference agent's flags, validated once at
// start-up. Every problem is reported as one line naming the flag, the value and what is allowed.

import { isIP } from 'node:net'
import { API_SERVER_KEYS, SERVICE_ACCOUNT_DIR, apiServerJwksUrl } from '../token/api-server-keys.js'
import type { LogLevel } from '../util/logger.js'
import { formatDurationMs, parseDurationMs } from './duration.js'
import {
  ConfigError,
  badValue,
  isRegionName,
  parseClusterName,
  parseLogLevel,
  parsePort,
  validateEndpointUrl,
} from './values.js'

/** Where credentials come from (--credential-source). */
export const CREDENTIAL_SOURCES = ['eks-auth', 'sts', 'eks-auth-then-sts'] as const
export type CredentialSourceName = (typeof CREDENTIAL_SOURCES)[number]

/** Which verified tokens share a cache entry (--share-credentials). */
export const SHARE_MODES = ['per-pod', 'per-association'] as const
export type ShareMode = (typeof SHARE_MODES)[number]

/** The audience of pod identity tokens (the webhook's projected volume asks for it). */
export const DEFAULT_TOKEN_AUDIENCE = 'pods.eks.amazonaws.com'

export interface ServerConfig {
  /**
   * EKS cluster name (path label of AssumeRoleForPodIdentity). Required but with
   * `--credential-source sts`, where it only names STS sessions.
   */
  clusterName: string | undefined
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
  /** The most tokens the credential cache holds (LRU); 0 disables caching. Default 2000. */
  maxCacheSize: number
  /** Cached credentials are renewed at most this long after they were fetched; 0 disables caching. Default 3 h. */
  maxCredentialRetentionMs: number
  /** Rate limit of background refreshes towards EKS Auth, calls per second. Default 3. */
  maxServiceQps: number
  /** Re-read the shared credentials file for the node's own credentials (hybrid nodes). */
  rotateCredentials: boolean
  /** Log level. Default info. */
  verbosity: LogLevel
  /** How long an upstream's final refusal of a token is answered again without a call; 0 = never. Default 5 s. */
  negativeCacheTtlMs: number
  /** Requests per second and source address that may start an upstream call (burst 2x); 0 = no limit. Default 10. */
  clientMissRate: number
  /** Connections per source address served at once (more are held unread); 0 = no limit. Default 256. */
  clientMaxConnections: number
  /** Requests per second on all credential listeners together (burst half of it); 0 = no limit (default). */
  maxRequestRate: number
  /** Where credentials come from. Default eks-auth. */
  credentialSource: CredentialSourceName
  /** Associations file (namespace + service account -> role) of the STS source; required with it. */
  associationsFile: string | undefined
  /** STS endpoint override (--sts-endpoint); undefined = AWS_ENDPOINT_URL_STS or the region's. */
  stsEndpoint: string | undefined
  /** Lifetime of STS credentials when the association names none, seconds. Default 3600. */
  stsDurationSeconds: number
  /**
   * The service-account issuer's key set, an http(s) URL or a file (--token-jwks); undefined =
   * tokens are not verified on the node (each token is its own cache entry, judged upstream).
   */
  tokenJwks: string | undefined
  /**
   * Set with --token-jwks kubernetes (tokenJwks is then the API server's key-set URL): the
   * directory of the agent's own service-account token and the cluster's CA, used to read it.
   */
  tokenJwksServiceAccountDir?: string | undefined
  /** The expected `iss` of verified tokens; set exactly when tokenJwks is. */
  tokenIssuer: string | undefined
  /** The audience verified tokens must carry. Default pods.eks.amazonaws.com. */
  tokenAudience: string
  /** Which verified tokens share an entry: each pod's own (default), or each association's. */
  shareCredentials: ShareMode
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
  negativeCacheTtl?: string | undefined
  clientMissRate?: string | undefined
  clientMaxConnections?: string | undefined
  maxRequestRate?: string | undefined
  credentialSource?: string | undefined
  associationsFile?: string | undefined
  stsEndpoint?: string | undefined
  stsDuration?: string | undefined
  tokenJwks?: string | undefined
  tokenIssuer?: string | undefined
  tokenAudience?: string | undefined
  shareCredentials?: string | undefined
}

/** The longest --negative-cache-ttl: a refusal must not hide a new association for long. */
export const MAX_NEGATIVE_CACHE_TTL_MS = 60_000

/** A flag's value parsed, or its default when it was not given. */
function valueOr<T>(value: string | undefined, dflt: T, parse: (v: string) => T): T {
  return value === undefined ? dflt : parse(value)
}

function parseNonNegativeInt(flag: string, value: string): number {
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw badValue(flag, value, 'is not a whole number; expected an integer >= 0')
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
  if (isIP(host) === 0) {
    throw badValue(
      '--bind-hosts',
      value,
      'is not an IP address; expected an IPv4 or IPv6 literal such as 169.254.170.23 or [fd00:ec2::23]',
    )
  }
  if (host === '0.0.0.0' || host === '::' || /^0*:(0*:)*0*$/.test(host)) {
    throw badValue(
      '--bind-hosts',
      value,
      'is a wildcard address; bind the agent to the specific addresses pods call (the Host check compares against them)',
    )
  }
  return host.toLowerCase()
}

function parseBindHosts(values: readonly string[]): string[] {
  const hosts = values.flatMap((v) =>
    v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  )
  if (hosts.length === 0) throw new ConfigError('--bind-hosts: at least one address is required')
  return [...new Set(hosts.map(parseBindHost))]
}

function parseDuration(flag: string, value: string, expected: string): number {
  const ms = parseDurationMs(value)
  if (ms === undefined) throw badValue(flag, value, `is not a duration; expected ${expected}`)
  return ms
}

/** A rate in calls per second: > 0, or also 0 where `zeroMeans` says what 0 does. */
function parseRate(flag: string, value: string, zeroMeans?: string): number {
  const rate = Number(value)
  const allowed = zeroMeans === undefined ? rate > 0 : rate >= 0
  if (value.trim() === '' || !Number.isFinite(rate) || !allowed) {
    const expected =
      zeroMeans === undefined
        ? 'a number of calls per second > 0'
        : `a number per second >= 0 (0 ${zeroMeans})`
    throw badValue(flag, value, `is not a rate; expected ${expected}`)
  }
  return rate
}

function parseMetricsAddress(value: string): string {
  const address = stripBrackets(value.trim())
  if (address === '' || (isIP(address) === 0 && !/^[A-Za-z0-9.-]+$/.test(address))) {
    throw badValue('--metrics-address', value, 'is not an address or host name')
  }
  return address
}

/** The region from the environment; an empty AWS_REGION counts as unset, as in the AWS SDKs. */
function regionFrom(env: NodeJS.ProcessEnv): string {
  const region = (env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim()) ?? ''
  if (region === '') {
    throw new ConfigError(
      'no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION) to the region of the cluster, e.g. AWS_REGION=us-west-2',
    )
  }
  if (!isRegionName(region)) {
    throw badValue('AWS_REGION', region, 'is not a region name; expected e.g. us-west-2')
  }
  return region
}

/** Validate raw options and the environment into a ServerConfig. Throws ConfigError. */
export function buildServerConfig(raw: RawServerOptions, env: NodeJS.ProcessEnv): ServerConfig {
  const credentialSource = valueOr<CredentialSourceName>(raw.credentialSource, 'eks-auth', (v) => {
    if (!(CREDENTIAL_SOURCES as readonly string[]).includes(v)) {
      throw badValue(
        '--credential-source',
        v,
        `is not a source; expected one of ${CREDENTIAL_SOURCES.join(', ')}`,
      )
    }
    return v as CredentialSourceName
  })
  const clusterText = raw.clusterName?.trim() ?? ''
  if (clusterText === '' && credentialSource !== 'sts') {
    throw new ConfigError(
      '--cluster-name is required (the EKS cluster this node belongs to; optional only with --credential-source sts)',
    )
  }
  const clusterName =
    clusterText === '' ? undefined : parseClusterName('--cluster-name', clusterText)
  const associationsFile = raw.associationsFile?.trim() || undefined
  if (credentialSource !== 'eks-auth' && associationsFile === undefined) {
    throw new ConfigError(
      `--associations-file is required with --credential-source ${credentialSource}: it names the role of each namespace and service account`,
    )
  }
  let stsEndpoint: string | undefined
  if (raw.stsEndpoint !== undefined && raw.stsEndpoint !== '') {
    validateEndpointUrl(raw.stsEndpoint, '--sts-endpoint')
    stsEndpoint = raw.stsEndpoint.replace(/\/+$/, '')
  }
  const stsDurationSeconds = valueOr(raw.stsDuration, 3600, (v) => {
    const ms = parseDuration('--sts-duration', v, 'e.g. 1h, 30m (15m to 12h)')
    if (ms < 900_000 || ms > 43_200_000 || ms % 1000 !== 0) {
      throw badValue('--sts-duration', v, 'is out of range; STS allows 15m to 12h in whole seconds')
    }
    return ms / 1000
  })
  const verification = parseVerification(raw, env)
  const bindHosts = parseBindHosts(raw.bindHosts ?? [...DEFAULT_BIND_HOSTS])
  const port = valueOr(raw.port, 80, (v) => parsePort('--port', v))
  const probePort = valueOr(raw.probePort, 2703, (v) => parsePort('--probe-port', v))
  const metricsPort = valueOr(raw.metricsPort, 2705, (v) => parsePort('--metrics-port', v))
  if (probePort !== 0 && probePort === metricsPort) {
    throw new ConfigError(
      `--probe-port and --metrics-port are both ${probePort}; they must differ (the metrics server also serves the probes)`,
    )
  }
  const metricsAddress = parseMetricsAddress(raw.metricsAddress ?? '0.0.0.0')
  const maxCacheSize = valueOr(raw.maxCacheSize, 2000, (v) =>
    parseNonNegativeInt('--max-cache-size', v),
  )
  const maxCredentialRetentionMs = valueOr(raw.maxCredentialRetention, 3 * 3_600_000, (v) =>
    parseDuration(
      '--max-credential-retention-before-renewal',
      v,
      'e.g. 3h, 90m, 1h30m or 0 (0 disables caching)',
    ),
  )
  const maxServiceQps = valueOr(raw.maxServiceQps, 3, (v) => parseRate('--max-service-qps', v))
  const negativeCacheTtlMs = valueOr(raw.negativeCacheTtl, 5000, (v) => {
    const ms = parseDuration('--negative-cache-ttl', v, 'e.g. 5s, 30s or 0 (0 = off)')
    if (ms > MAX_NEGATIVE_CACHE_TTL_MS) {
      throw badValue(
        '--negative-cache-ttl',
        v,
        'is too long; at most 1m, so that a new association is picked up within a minute',
      )
    }
    return ms
  })
  const clientMissRate = valueOr(raw.clientMissRate, 10, (v) =>
    parseRate('--client-miss-rate', v, 'turns the limit off'),
  )
  const clientMaxConnections = valueOr(raw.clientMaxConnections, 256, (v) =>
    parseNonNegativeInt('--client-max-connections', v),
  )
  const maxRequestRate = valueOr(raw.maxRequestRate, 0, (v) =>
    parseRate('--max-request-rate', v, 'turns the limit off'),
  )
  let endpoint: string | undefined
  if (raw.endpoint !== undefined && raw.endpoint !== '') {
    validateEndpointUrl(raw.endpoint, '--endpoint')
    endpoint = raw.endpoint.replace(/\/+$/, '')
  }
  const verbosity = valueOr<LogLevel>(raw.verbosity, 'info', (v) => parseLogLevel('--verbosity', v))
  // Checked after the flags, so a bad flag is reported as itself wherever the agent runs.
  const region = regionFrom(env)
  return {
    clusterName,
    port,
    bindHosts,
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
    negativeCacheTtlMs,
    clientMissRate,
    clientMaxConnections,
    maxRequestRate,
    credentialSource,
    associationsFile,
    stsEndpoint,
    stsDurationSeconds,
    ...verification,
  }
}

type VerificationConfig = Pick<
  ServerConfig,
  'tokenJwks' | 'tokenJwksServiceAccountDir' | 'tokenIssuer' | 'tokenAudience' | 'shareCredentials'
>

/** --token-jwks, --token-issuer, --token-audience and --share-credentials, checked together. */
function parseVerification(raw: RawServerOptions, env: NodeJS.ProcessEnv): VerificationConfig {
  let tokenJwks = raw.tokenJwks?.trim() || undefined
  let tokenJwksServiceAccountDir: string | undefined
  const tokenIssuer = raw.tokenIssuer?.trim() || undefined
  if (tokenJwks === API_SERVER_KEYS) {
    tokenJwks = apiServerJwksUrl(env)
    tokenJwksServiceAccountDir = SERVICE_ACCOUNT_DIR
  } else if (tokenJwks !== undefined && /^[a-z][a-z0-9+.-]*:\/\//i.test(tokenJwks)) {
    validateEndpointUrl(tokenJwks, '--token-jwks')
  }
  if (tokenJwks !== undefined && tokenIssuer === undefined) {
    throw new ConfigError(
      "--token-issuer is required with --token-jwks: the `iss` of the cluster's service-account tokens (on EKS the cluster's OIDC issuer URL)",
    )
  }
  if (tokenIssuer !== undefined && tokenJwks === undefined) {
    throw new ConfigError(
      '--token-issuer needs --token-jwks: the keys that verify tokens of that issuer (a URL or a file)',
    )
  }
  const tokenAudience = raw.tokenAudience?.trim() || DEFAULT_TOKEN_AUDIENCE
  const shareCredentials = valueOr<ShareMode>(raw.shareCredentials, 'per-pod', (v) => {
    if (!(SHARE_MODES as readonly string[]).includes(v)) {
      throw badValue(
        '--share-credentials',
        v,
        `is not a mode; expected ${SHARE_MODES.join(' or ')}`,
      )
    }
    return v as ShareMode
  })
  if (shareCredentials === 'per-association' && tokenJwks === undefined) {
    throw new ConfigError(
      '--share-credentials per-association needs --token-jwks and --token-issuer: credentials are shared only between tokens verified on the node',
    )
  }
  return { tokenJwks, tokenJwksServiceAccountDir, tokenIssuer, tokenAudience, shareCredentials }
}

/** One line describing the effective configuration (for the start-up log). */
export function describeConfig(c: ServerConfig): Record<string, unknown> {
  return {
    clusterName: c.clusterName ?? '(none)',
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
    negativeCacheTtl: formatDurationMs(c.negativeCacheTtlMs),
    clientMissRate: c.clientMissRate,
    clientMaxConnections: c.clientMaxConnections,
    maxRequestRate: c.maxRequestRate,
    credentialSource: c.credentialSource,
    ...(c.associationsFile !== undefined ? { associationsFile: c.associationsFile } : {}),
    tokenVerification:
      c.tokenJwks === undefined
        ? 'off'
        : {
            jwks: c.tokenJwks,
            ...(c.tokenJwksServiceAccountDir !== undefined
              ? { jwksReadAs: "the agent's service account" }
              : {}),
            issuer: c.tokenIssuer,
            audience: c.tokenAudience,
          },
    shareCredentials: c.tokenJwks === undefined ? 'per-token' : c.shareCredentials,
    ...(c.credentialSource !== 'eks-auth'
      ? {
          stsEndpoint: c.stsEndpoint ?? '(default)',
          stsDuration: formatDurationMs(c.stsDurationSeconds * 1000),
        }
      : {}),
  }
}
