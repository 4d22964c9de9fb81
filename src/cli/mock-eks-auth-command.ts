// `pod-identity-agent mock-eks-auth`: run the mock EKS Auth server until SIGINT/SIGTERM.

import { ConfigError, isRegionName, parseClusterName } from '../config/values.js'
import { MockEksAuth } from '../mock/mock-eks-auth.js'
import { parseFlags, valueFlags } from './flags.js'
import {
  MOCK_COMMON_FLAGS,
  duration,
  mockCommonUsage,
  readMockCommon,
  startOrExplain,
  waitForStop,
} from './mock-common.js'

export const MOCK_EKS_AUTH_USAGE = `Usage: pod-identity-agent mock-eks-auth --associations FILE --jwks FILE [options]

A local EKS Auth AssumeRoleForPodIdentity endpoint with the real wire format: SigV4 checked,
tokens verified against a JWKS, roles from an associations file, fault injection.
Admin: GET /_mock/stats, GET|POST /_mock/faults (JSON), POST /_mock/reset.

${mockCommonUsage('429 ThrottlingException')}
  --cluster-name NAME          only this cluster exists; others get 404 (default: any)
  --region REGION              region of ARNs and of the required SigV4 scope (default: us-west-2)
  --credential-duration DUR    credential lifetime when the association sets none (default: 6h)
  --node-access-key-id ID      node key; with the secret, signatures are fully verified
                               (env MOCK_NODE_ACCESS_KEY_ID)
  --node-secret-access-key S   its secret (env MOCK_NODE_SECRET_ACCESS_KEY)
  -h, --help                   show this help
`

const OPTIONS = valueFlags(
  ...MOCK_COMMON_FLAGS,
  'cluster-name',
  'region',
  'credential-duration',
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
  const keyId = values['node-access-key-id'] ?? env.MOCK_NODE_ACCESS_KEY_ID
  const secret = values['node-secret-access-key'] ?? env.MOCK_NODE_SECRET_ACCESS_KEY
  if ((keyId === undefined || keyId === '') !== (secret === undefined || secret === '')) {
    throw new ConfigError(
      '--node-access-key-id and --node-secret-access-key (or MOCK_NODE_ACCESS_KEY_ID and ' +
        'MOCK_NODE_SECRET_ACCESS_KEY) go together: set both or neither',
    )
  }
  const common = await readMockCommon(values)

  const mock = new MockEksAuth({
    host: common.host,
    port: common.port,
    region,
    associations: common.associations,
    jwks: common.jwks,
    credentialDurationSeconds: Math.floor(credentialMs / 1000),
    faults: common.faults,
    ...(clusterName !== undefined ? { clusterName } : {}),
    ...(common.issuer !== undefined ? { issuer: common.issuer } : {}),
    ...(keyId
      ? { nodeCredentials: [{ accessKeyId: keyId, secretAccessKey: secret as string }] }
      : {}),
  })
  const url = await startOrExplain(mock, common.host, common.port)
  console.log(`mock EKS Auth listening on ${url}`)
  await waitForStop(options.signal)
  await mock.stop()
  return 0
}
