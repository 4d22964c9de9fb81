// The `server` command's flags: one table drives argument parsing, env vars and --help, so the
// three can never drift apart. Names and defaults follow the reference agent (cmd/server.go).

import type { RawServerOptions } from '../config/server-config.js'
import { ConfigError } from '../config/values.js'
import type { FlagOptions } from './flags.js'
import { parseFlags } from './flags.js'

interface FlagSpec {
  name: string
  short?: string
  key: keyof RawServerOptions
  type: 'string' | 'boolean'
  multiple?: boolean
  value?: string
  dflt: string
  help: string
}

export const ENV_PREFIX = 'POD_IDENTITY_AGENT_'

export const SERVER_FLAGS: readonly FlagSpec[] = [
  {
    name: 'cluster-name',
    short: 'c',
    key: 'clusterName',
    type: 'string',
    value: 'NAME',
    dflt: '(required)',
    help: 'EKS cluster name sent to EKS Auth (with --credential-source sts optional: it names STS sessions)',
  },
  {
    name: 'port',
    short: 'p',
    key: 'port',
    type: 'string',
    value: 'PORT',
    dflt: '80',
    help: 'port of the credential listeners',
  },
  {
    name: 'bind-hosts',
    short: 'b',
    key: 'bindHosts',
    type: 'string',
    multiple: true,
    value: 'ADDR',
    dflt: '169.254.170.23,[fd00:ec2::23]',
    help: 'addresses to serve credentials on (repeatable or comma-separated); each is bound on its own and one that cannot be bound is skipped',
  },
  {
    name: 'probe-port',
    key: 'probePort',
    type: 'string',
    value: 'PORT',
    dflt: '2703',
    help: 'port of /healthz and /readyz on localhost',
  },
  {
    name: 'metrics-address',
    key: 'metricsAddress',
    type: 'string',
    value: 'ADDR',
    dflt: '0.0.0.0',
    help: 'address of the metrics server',
  },
  {
    name: 'metrics-port',
    key: 'metricsPort',
    type: 'string',
    value: 'PORT',
    dflt: '2705',
    help: 'port of /metrics (also serves /healthz and /readyz)',
  },
  {
    name: 'endpoint',
    key: 'endpoint',
    type: 'string',
    value: 'URL',
    dflt: 'from region',
    help: 'EKS Auth endpoint override (else AWS_ENDPOINT_URL_EKS_AUTH, AWS_ENDPOINT_URL, then https://eks-auth.REGION.api.aws)',
  },
  {
    name: 'max-cache-size',
    key: 'maxCacheSize',
    type: 'string',
    value: 'N',
    dflt: '2000',
    help: 'most cached tokens, each bound to its credentials (LRU; with shared credentials several tokens share one set); 0 disables caching',
  },
  {
    name: 'max-credential-retention-before-renewal',
    key: 'maxCredentialRetention',
    type: 'string',
    value: 'DURATION',
    dflt: '3h',
    help: 'renew cached credentials at most this long after fetching them; 0 disables caching',
  },
  {
    name: 'max-service-qps',
    key: 'maxServiceQps',
    type: 'string',
    value: 'QPS',
    dflt: '3',
    help: 'rate limit of background renewals towards EKS Auth, calls per second',
  },
  {
    name: 'rotate-credentials',
    key: 'rotateCredentials',
    type: 'boolean',
    dflt: 'false',
    help: "re-read the node's shared credentials file every minute (hybrid nodes)",
  },
  {
    name: 'credential-source',
    key: 'credentialSource',
    type: 'string',
    value: 'SOURCE',
    dflt: 'eks-auth',
    help: 'eks-auth; sts (STS AssumeRoleWithWebIdentity only: clusters that are not EKS); eks-auth-then-sts (STS when EKS Auth is unreachable, slow, failing or throttling)',
  },
  {
    name: 'associations-file',
    key: 'associationsFile',
    type: 'string',
    value: 'FILE',
    dflt: 'none',
    help: 'JSON or YAML namespace/serviceAccount -> roleArn (and durationSeconds) of the STS source; re-read when it changes',
  },
  {
    name: 'sts-endpoint',
    key: 'stsEndpoint',
    type: 'string',
    value: 'URL',
    dflt: 'from region',
    help: "STS endpoint override (else AWS_ENDPOINT_URL_STS, then the region's STS endpoint)",
  },
  {
    name: 'sts-duration',
    key: 'stsDuration',
    type: 'string',
    value: 'DURATION',
    dflt: '1h',
    help: 'lifetime of STS credentials when the association names none (15m to 12h)',
  },
  {
    name: 'token-jwks',
    key: 'tokenJwks',
    type: 'string',
    value: 'URL|kubernetes|FILE',
    dflt: 'none: tokens are not verified on the node',
    help: "the service-account issuer's key set (JWKS) that verifies tokens on the node: a URL (the EKS cluster's OIDC issuer's), kubernetes (the API server's /openid/v1/jwks, read as the agent's own service account with the cluster's CA), or a file (re-read when it changes); needs --token-issuer",
  },
  {
    name: 'token-issuer',
    key: 'tokenIssuer',
    type: 'string',
    value: 'URL',
    dflt: 'none',
    help: "the `iss` verified tokens must carry (on EKS the cluster's OIDC issuer URL)",
  },
  {
    name: 'token-audience',
    key: 'tokenAudience',
    type: 'string',
    value: 'AUDIENCE',
    dflt: 'pods.eks.amazonaws.com',
    help: 'the audience verified tokens must carry',
  },
  {
    name: 'share-credentials',
    key: 'shareCredentials',
    type: 'string',
    value: 'MODE',
    dflt: 'per-pod',
    help: 'with --token-jwks: per-pod (a pod keeps its credentials across token rotation) or per-association (every pod of a service account on the node shares one set; see the README on session tags)',
  },
  {
    name: 'negative-cache-ttl',
    key: 'negativeCacheTtl',
    type: 'string',
    value: 'DURATION',
    dflt: '5s',
    help: "answer an upstream's final refusal of a token (invalid, expired, access denied, no association) again for this long without a call; at most 1m, 0 = off",
  },
  {
    name: 'client-miss-rate',
    key: 'clientMissRate',
    type: 'string',
    value: 'RATE',
    dflt: '10',
    help: 'requests per second and source address that may start an upstream call (burst twice that); more get 429; cache hits never count; 0 = no limit',
  },
  {
    name: 'client-max-connections',
    key: 'clientMaxConnections',
    type: 'string',
    value: 'N',
    dflt: '256',
    help: 'connections per source address served at once; more are held unread until one of them closes; 0 = no limit',
  },
  {
    name: 'max-request-rate',
    key: 'maxRequestRate',
    type: 'string',
    value: 'RATE',
    dflt: '0',
    help: "requests per second on the credential listeners together, hits included (burst half of it; the reference's 1000); more get 429; 0 = no limit",
  },
  {
    name: 'verbosity',
    short: 'v',
    key: 'verbosity',
    type: 'string',
    value: 'LEVEL',
    dflt: 'info',
    help: 'log level: trace, debug, info, warn, error',
  },
]

/** Env var name for a flag: --max-cache-size -> POD_IDENTITY_AGENT_MAX_CACHE_SIZE. */
export function envName(flag: string): string {
  return ENV_PREFIX + flag.toUpperCase().replace(/-/g, '_')
}

export function serverUsage(): string {
  const lines = [
    'Usage: pod-identity-agent server --cluster-name NAME [flags]',
    '',
    'Serves AWS credentials to pods on GET /v1/credentials, exchanging their service-account',
    'token with EKS Auth AssumeRoleForPodIdentity. Region from AWS_REGION or AWS_DEFAULT_REGION;',
    "the agent signs with the node's own credentials (AWS default chain).",
    '',
    'The default addresses exist only once `pod-identity-agent initialize` has created them (the',
    'DaemonSet does). On a laptop, serve on loopback: --bind-hosts 127.0.0.1 --port 8080.',
    '',
    'Flags (each also read from the env var shown; a flag wins over its env var):',
  ]
  for (const f of SERVER_FLAGS) {
    const names = `${f.short !== undefined ? `-${f.short}, ` : '    '}--${f.name}${f.value !== undefined ? ` ${f.value}` : ''}`
    lines.push(`  ${names}`)
    lines.push(`        ${f.help} (default ${f.dflt}; env ${envName(f.name)})`)
  }
  lines.push('  -h, --help')
  lines.push('        show this help')
  return lines.join('\n')
}

const TRUE = new Set(['1', 'true', 'yes', 'on'])
const FALSE = new Set(['0', 'false', 'no', 'off', ''])

/** Parse `server` argv (after the subcommand) plus env into raw options. Throws ConfigError. */
export function parseServerArgs(
  argv: string[],
  env: NodeJS.ProcessEnv,
): { help: true } | { help: false; raw: RawServerOptions; fromEnv: ReadonlySet<string> } {
  const options: FlagOptions = { help: { type: 'boolean', short: 'h' } }
  for (const f of SERVER_FLAGS) {
    options[f.name] = {
      type: f.type,
      ...(f.short !== undefined ? { short: f.short } : {}),
      ...(f.multiple === true ? { multiple: true } : {}),
    }
  }
  const values: Record<string, unknown> = parseFlags('server', argv, options)
  if (values.help === true) return { help: true }

  const raw: RawServerOptions = {}
  /** Flags whose value came from their env var (so an error can name the variable). */
  const setByEnv = new Set<string>()
  for (const f of SERVER_FLAGS) {
    const fromFlag = values[f.name]
    const fromEnv = env[envName(f.name)]
    if (fromFlag === undefined && fromEnv !== undefined) setByEnv.add(f.name)
    if (f.type === 'boolean') {
      let v: boolean | undefined = fromFlag === true ? true : undefined
      if (v === undefined && fromEnv !== undefined) {
        const e = fromEnv.trim().toLowerCase()
        if (TRUE.has(e)) v = true
        else if (FALSE.has(e)) v = false
        else
          throw new ConfigError(
            `server: ${envName(f.name)}: "${fromEnv}" is not a boolean; expected true or false`,
          )
      }
      ;(raw as Record<string, unknown>)[f.key] = v
    } else if (f.multiple === true) {
      const list = Array.isArray(fromFlag) ? (fromFlag as string[]) : undefined
      ;(raw as Record<string, unknown>)[f.key] =
        list ?? (fromEnv !== undefined ? [fromEnv] : undefined)
    } else {
      const v = typeof fromFlag === 'string' ? fromFlag : fromEnv
      ;(raw as Record<string, unknown>)[f.key] = v
    }
  }
  return { help: false, raw, fromEnv: setByEnv }
}

/**
 * A config error about a flag whose value came from its env var names the variable too:
 * `--port: "abc" ...` -> `POD_IDENTITY_AGENT_PORT (--port): "abc" ...`.
 */
export function nameEnvSource(message: string, fromEnv: ReadonlySet<string>): string {
  const m = /^--([a-z0-9-]+)/.exec(message)
  const flag = m?.[1]
  if (flag === undefined || !fromEnv.has(flag)) return message
  return `${envName(flag)} (--${flag})${message.slice(flag.length + 2)}`
}
