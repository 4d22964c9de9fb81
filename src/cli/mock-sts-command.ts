// `pod-identity-agent mock-sts`: run the mock STS (AssumeRoleWithWebIdentity) until SIGINT/SIGTERM.

import { MockSts } from '../mock/mock-sts.js'
import { parseFlags, valueFlags } from './flags.js'
import {
  MOCK_COMMON_FLAGS,
  mockCommonUsage,
  readMockCommon,
  startOrExplain,
  waitForStop,
} from './mock-common.js'

export const MOCK_STS_USAGE = `Usage: pod-identity-agent mock-sts --associations FILE --jwks FILE [options]

A local STS AssumeRoleWithWebIdentity endpoint with the real Query/XML wire format: tokens
verified against a JWKS (audience pods.eks.amazonaws.com, expiry), a role assumable only by the
namespace and service account whose association names it, fault injection.
Admin: GET /_mock/stats, GET|POST /_mock/faults (JSON), POST /_mock/reset.

${mockCommonUsage('400 Throttling')}
  -h, --help                   show this help
`

const OPTIONS = valueFlags(...MOCK_COMMON_FLAGS)

/** Run the mock until SIGINT/SIGTERM; returns the exit code. @throws ConfigError on bad flags or files. */
export async function runMockStsCommand(
  argv: string[],
  options: { signal?: AbortSignal } = {},
): Promise<number> {
  const values = parseFlags('mock-sts', argv, OPTIONS)
  if (values.help === true) {
    console.log(MOCK_STS_USAGE)
    return 0
  }
  const common = await readMockCommon(values)
  const mock = new MockSts({
    host: common.host,
    port: common.port,
    associations: common.associations,
    jwks: common.jwks,
    issuer: common.issuer,
    faults: common.faults,
  })
  const url = await startOrExplain(mock, common.host, common.port)
  console.log(`mock STS listening on ${url}`)
  await waitForStop(options.signal)
  await mock.stop()
  return 0
}
