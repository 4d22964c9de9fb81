// `pod-identity-agent mock-eks-auth`: run the mock EKS Auth server until SIGINT/SIGTERM.

import { readFile } from 'node:fs/promises'
import { createLocalJWKSet, type JSONWebKeySet } from 'jose'
import { AssociationsError, loadAssociationsFile } from '../associations/associations.js'
import { parseDurationMs } from '../config/duration.js'
import { ConfigError, isRegionName, parseClusterName, parsePort } from '../config/values.js'
import { MockEksAuth, type Faults } from '../mock/mock-eks-auth.js'
import { parseFlags, valueFlags } from './flags.js'

export const MOCK_EKS_AUTH_USAGE = `Usage: pod-identity-agent mock-eks-auth --associations FILE --jwks FILE [options]

A local EKS Auth AssumeRoleForPodIdentity endpoint with the real wire format: SigV4 checked,
tokens verified against a JWKS, roles from an associations file, fault injection.
Admin: GET /_mock/stats, GET|POST /_mock/faults (JSON), POST /_mock/reset.

Required:
  --associations FILE          JSON or YAML: {"associations": [{"namespace", "serviceAccount",
                               "roleArn", "durationSeconds"?}]}
  --jwks FILE                  public keys tokens must be signed with (token --jwks-out)

Options:
  --host HOST                  address to listen on (default: 127.0.0.1)
  --port PORT                  port, 0 = any free port (default: 8080)
  --cluster-name NAME          only this cluster exists; others get 404 (default: any)
  --region REGION              region of ARNs and of the required SigV4 scope (default: us-west-2)
  --issuer URL                 required token issuer (default: not checked)
  --credential-duration DUR    credential lifetime when the association sets none (default: 6h)
  --latency DUR                delay before every answer (default: 0s)
  --throttle-qps N             requests per second before 429 ThrottlingException, 0 = off (default: 0)
  --error-rate P               probability 0..1 of answering --error-status (default: 0)
  --error-status 500|503       status of injected errors (default: 503)
  --node-access-key-id ID      node key; with the secret, signatures are fully verified
                               (env MOCK_NODE_ACCESS_KEY_ID)
  --node-secret-access-key S   its secret (env MOCK_NODE_SECRET_ACCESS_KEY)
  -h, --help                   show this help
`

const OPTIONS = valueFlags(
  'associations',
  'jwks',
  'host',
  'port',
  'cluster-name',
  'region',
  'issuer',
  'credential-duration',
  'latency',
  'throttle-qps',
  'error-rate',
  'error-status',
  'node-access-key-id',
  'node-secret-access-key',
)

export interface MockEksAuthCommandOptions {
  /** Stops the server like SIGTERM does (for in-process use). */
  signal?: AbortSignal
  env?: NodeJS.ProcessEnv
}

/** Run the mock until SIGINT/SIGTERM; returns the exit code. @throws ConfigError on bad flags or files. */
export async function runMockEksAuthCommand(
  argv: string[],
  options: MockEksAuthCommandOptions = {},
): Promise<number> {
  const values = parseFlags('mock-eks-auth', argv, OPTIONS)
  if (values.help === true) {
    console.log(MOCK_EKS_AUTH_USAGE)
    return 0
  }
  const env = options.env ?? process.env
  const associationsFile = values.associations
  if (associationsFile === undefined || associationsFile === '') {
    throw new ConfigError('--associations is required: a JSON or YAML associations file')
  }
  const jwksFile = values.jwks
  if (jwksFile === undefined || jwksFile === '') {
    throw new ConfigError(
      '--jwks is required: the public JWKS tokens are signed with (token --jwks-out)',
    )
  }

  const port = values.port === undefined ? 8080 : parsePort('--port', values.port)
  const clusterName = values['cluster-name']
  if (clusterName !== undefined) parseClusterName('--cluster-name', clusterName)
  const region = values.region ?? 'us-west-2'
  if (!isRegionName(region)) {
    throw new ConfigError(`--region ${JSON.stringify(region)} is not a region name like us-west-2`)
  }
  const credentialMs = duration(
    values['credential-duration'],
    '--credential-duration',
    6 * 3_600_000,
  )
  if (credentialMs < 1000) {
    throw new ConfigError('--credential-duration must be at least 1s (e.g. 6h, 15m)')
  }
  const faults: Partial<Faults> = {
    latencyMs: duration(values.latency, '--latency', 0),
    throttleQps: number(values['throttle-qps'], '--throttle-qps', 0, Infinity, 'a number >= 0'),
    errorRate: number(values['error-rate'], '--error-rate', 0, 1, 'a probability from 0 to 1'),
  }
  const errorStatus = values['error-status']
  if (errorStatus !== undefined) {
    if (errorStatus !== '500' && errorStatus !== '503') {
      throw new ConfigError(`--error-status ${JSON.stringify(errorStatus)} must be 500 or 503`)
    }
    faults.errorStatus = errorStatus === '500' ? 500 : 503
  }
  const keyId = values['node-access-key-id'] ?? env.MOCK_NODE_ACCESS_KEY_ID
  const secret = values['node-secret-access-key'] ?? env.MOCK_NODE_SECRET_ACCESS_KEY
  if ((keyId === undefined || keyId === '') !== (secret === undefined || secret === '')) {
    throw new ConfigError(
      '--node-access-key-id and --node-secret-access-key (or MOCK_NODE_ACCESS_KEY_ID and ' +
        'MOCK_NODE_SECRET_ACCESS_KEY) go together: set both or neither',
    )
  }

  let associations
  try {
    associations = await loadAssociationsFile(associationsFile)
  } catch (err) {
    if (err instanceof AssociationsError) throw new ConfigError(`--associations ${err.message}`)
    throw err
  }
  const jwks = await loadJwks(jwksFile)

  const mock = new MockEksAuth({
    host: values.host ?? '127.0.0.1',
    port,
    region,
    associations,
    jwks,
    credentialDurationSeconds: Math.floor(credentialMs / 1000),
    faults,
    ...(clusterName !== undefined ? { clusterName } : {}),
    ...(values.issuer !== undefined ? { issuer: values.issuer } : {}),
    ...(keyId
      ? { nodeCredentials: [{ accessKeyId: keyId, secretAccessKey: secret as string }] }
      : {}),
  })
  let url: string
  try {
    url = await mock.start()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new ConfigError(`cannot listen on ${values.host ?? '127.0.0.1'}:${port} (${code})`)
  }
  console.log(`mock EKS Auth listening on ${url}`)
  await waitForStop(options.signal)
  await mock.stop()
  return 0
}

async function loadJwks(file: string): Promise<JSONWebKeySet> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new ConfigError(`--jwks ${file}: cannot read (${code})`)
  }
  let jwks: unknown
  try {
    jwks = JSON.parse(text)
  } catch {
    throw new ConfigError(
      `--jwks ${file}: not JSON; expected {"keys": [...]} as written by token --jwks-out`,
    )
  }
  const keys = (jwks as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new ConfigError(`--jwks ${file}: expected {"keys": [...]} with at least one public key`)
  }
  if (keys.some((k: unknown) => k !== null && typeof k === 'object' && 'd' in k)) {
    throw new ConfigError(
      `--jwks ${file}: holds a private key; pass the public set (token --jwks-out)`,
    )
  }
  try {
    createLocalJWKSet(jwks as JSONWebKeySet)
  } catch (err) {
    throw new ConfigError(`--jwks ${file}: not a valid JWKS (${(err as Error).message})`)
  }
  return jwks as JSONWebKeySet
}

function duration(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback
  const ms = parseDurationMs(text)
  if (ms === undefined) {
    throw new ConfigError(
      `${flag} ${JSON.stringify(text)} is not a duration (e.g. 0s, 250ms, 6h, 1h30m)`,
    )
  }
  return ms
}

function number(
  text: string | undefined,
  flag: string,
  min: number,
  max: number,
  what: string,
): number {
  if (text === undefined) return min
  const n = Number(text)
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new ConfigError(`${flag} ${JSON.stringify(text)} must be ${what}`)
  }
  return n
}

function waitForStop(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done)
      process.off('SIGTERM', done)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    process.once('SIGINT', done)
    process.once('SIGTERM', done)
    if (signal?.aborted) done()
    else signal?.addEventListener('abort', done, { once: true })
  })
}
