// EKS Auth endpoint resolution: the --endpoint flag, then AWS_ENDPOINT_URL_EKS_AUTH, then
// AWS_ENDPOINT_URL, then the default hostname of the region's partition (protocol.md 1.3).
// The default is the dual-stack hostname wherever the partition has one, as the SDK rules give.

import { ConfigError, isRegionName, validateEndpointUrl } from '../config/values.js'

interface Partition {
  readonly id: string
  readonly regionRegex: RegExp
  /** Suffix of the default (and FIPS) hostname: dual-stack where the partition supports it. */
  readonly suffix: string
}

// Order matters only for readability: no region matches two of these patterns.
const PARTITIONS: readonly Partition[] = [
  { id: 'aws-us-gov', regionRegex: /^us-gov-\w+-\d+$/, suffix: 'api.aws' },
  { id: 'aws-cn', regionRegex: /^cn-\w+-\d+$/, suffix: 'api.amazonwebservices.com.cn' },
  { id: 'aws-eusc', regionRegex: /^eusc-(de)-\w+-\d+$/, suffix: 'api.amazonwebservices.eu' },
  { id: 'aws-iso', regionRegex: /^us-iso-\w+-\d+$/, suffix: 'c2s.ic.gov' },
  { id: 'aws-iso-b', regionRegex: /^us-isob-\w+-\d+$/, suffix: 'sc2s.sgov.gov' },
  { id: 'aws-iso-e', regionRegex: /^eu-isoe-\w+-\d+$/, suffix: 'cloud.adc-e.uk' },
  { id: 'aws-iso-f', regionRegex: /^us-isof-\w+-\d+$/, suffix: 'csp.hci.ic.gov' },
  { id: 'aws', regionRegex: /^(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+$/, suffix: 'api.aws' },
]

/** Regions that match no pattern fall back to the `aws` partition, as the SDKs do. */
const DEFAULT_PARTITION = PARTITIONS[PARTITIONS.length - 1] as Partition

/**
 * Splits a region such as `fips-us-east-1` or `us-east-1-fips` into its base region and the FIPS
 * switch (the Go SDK's mapping). Use the base region as the SigV4 signing region.
 */
export function normalizeRegion(region: string): { region: string; fips: boolean } {
  if (region.startsWith('fips-')) return { region: region.slice(5), fips: true }
  if (region.endsWith('-fips')) return { region: region.slice(0, -5), fips: true }
  return { region, fips: false }
}

/** The partition id (`aws`, `aws-cn`, `aws-iso`...) a region belongs to. */
export function partitionOf(region: string): string {
  return findPartition(normalizeRegion(region).region).id
}

function findPartition(region: string): Partition {
  for (const p of PARTITIONS) if (p.regionRegex.test(region)) return p
  return DEFAULT_PARTITION
}

function isTrue(v: string | undefined): boolean {
  return v !== undefined && v.trim().toLowerCase() === 'true'
}

/**
 * The EKS Auth base URL (no trailing slash). Precedence: `endpoint` (the --endpoint flag) >
 * `AWS_ENDPOINT_URL_EKS_AUTH` > `AWS_ENDPOINT_URL` > the region's default hostname. The two env
 * vars are skipped when `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`, as in the SDKs. FIPS is on when
 * `AWS_USE_FIPS_ENDPOINT=true` or the region is `fips-X` / `X-fips`; FIPS with a custom endpoint
 * throws, as the SDK endpoint rules do. Throws ConfigError.
 *
 * @param opts.env defaults to `process.env`
 */
export function resolveEksAuthEndpoint(opts: {
  region: string
  endpoint?: string | undefined
  env?: NodeJS.ProcessEnv | undefined
}): string {
  const env = opts.env ?? process.env
  const { region, fips: regionFips } = normalizeRegion(opts.region.trim())
  const fips = regionFips || isTrue(env.AWS_USE_FIPS_ENDPOINT)

  let custom: { value: string; what: string } | undefined
  if (opts.endpoint !== undefined && opts.endpoint.trim() !== '') {
    custom = { value: opts.endpoint.trim(), what: '--endpoint' }
  } else if (!isTrue(env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS)) {
    for (const name of ['AWS_ENDPOINT_URL_EKS_AUTH', 'AWS_ENDPOINT_URL'] as const) {
      const v = env[name]?.trim()
      if (v !== undefined && v !== '') {
        custom = { value: v, what: name }
        break
      }
    }
  }

  if (custom !== undefined) {
    if (fips) throw new ConfigError('FIPS and custom endpoint are not supported')
    validateEndpointUrl(custom.value, custom.what)
    return custom.value.replace(/\/+$/, '')
  }

  if (region === '') throw new ConfigError('Invalid Configuration: Missing Region')
  if (!isRegionName(region)) throw new ConfigError(`invalid region ${JSON.stringify(opts.region)}`)
  const host = fips ? 'eks-auth-fips' : 'eks-auth'
  return `https://${host}.${region}.${findPartition(region).suffix}`
}
