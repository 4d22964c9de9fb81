// `pod-identity-agent dev`: the one-command local run. Mock EKS Auth + a minted token in a file +
// the agent on loopback, then proof through the real AWS SDK provider pods use (fromHttp), and the
// two env vars that point any SDK at it. Runs until Ctrl-C (or exits after the proof with --once).

import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { ServerConfig } from '../config/server-config.js'
import { LOG_LEVELS } from '../config/server-config.js'
import { describeParseError } from './server-flags.js'
import { UsageError } from './usage-error.js'

const USAGE = `Usage: pod-identity-agent dev [flags]

Runs everything on this machine: a mock EKS Auth (real wire format), a token issuer writing a
projected-token-shaped JWT to a file, and the agent on 127.0.0.1. Then fetches credentials through
the AWS SDK for JavaScript container provider, exactly as a pod does, and prints the env vars that
point your own SDK at the agent. The credentials are fake: they only work against the mock.

Flags:
  --port PORT              agent port on 127.0.0.1 (default 0: any free port)
  --namespace NS           namespace of the demo pod (default default)
  --service-account SA     service account of the demo pod (default demo)
  --role-arn ARN           role of the demo association (default arn:aws:iam::111122223333:role/demo-app)
  --once                   exit after the proof instead of serving until Ctrl-C
  -v, --verbosity LEVEL    agent log level (default warn)
  -h, --help               show this help`

function mask(secret: string): string {
  return `${'*'.repeat(8)} (${secret.length} characters, not shown)`
}

export async function runDevCommand(argv: string[]): Promise<number> {
  let values
  try {
    ;({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        port: { type: 'string', default: '0' },
        namespace: { type: 'string', default: 'default' },
        'service-account': { type: 'string', default: 'demo' },
        'role-arn': { type: 'string', default: 'arn:aws:iam::111122223333:role/demo-app' },
        once: { type: 'boolean', default: false },
        verbosity: { type: 'string', short: 'v', default: 'warn' },
        help: { type: 'boolean', short: 'h' },
      },
    }))
  } catch (err) {
    throw new UsageError(`dev: ${describeParseError(err)} (see pod-identity-agent dev --help)`)
  }
  if (values.help === true) {
    console.log(USAGE)
    return 0
  }
  const port = Number(values.port)
  if (!/^\d+$/.test(values.port) || port > 65535) {
    throw new UsageError(`dev: --port "${values.port}" is not a port; expected an integer 0-65535`)
  }
  if (!(LOG_LEVELS as readonly string[]).includes(values.verbosity)) {
    throw new UsageError(
      `dev: --verbosity "${values.verbosity}" is not one of ${LOG_LEVELS.join(', ')}`,
    )
  }
  const namespace = values.namespace
  const serviceAccount = values['service-account']

  const [
    { TokenIssuer },
    { MockEksAuth },
    { parseAssociations },
    { startAgent },
    { staticNodeCredentials },
    { fromHttp },
  ] = await Promise.all([
    import('../mock/token-issuer.js'),
    import('../mock/mock-eks-auth.js'),
    import('../mock/associations.js'),
    import('../agent.js'),
    import('../node-credentials/default-chain.js'),
    import('@aws-sdk/credential-provider-http'),
  ])

  let associations
  try {
    associations = parseAssociations(
      JSON.stringify({
        associations: [{ namespace, serviceAccount, roleArn: values['role-arn'] }],
      }),
      'dev flags',
    )
  } catch (err) {
    throw new UsageError(`dev: ${(err as Error).message}`)
  }

  const clusterName = 'dev-cluster'
  const region = 'us-west-2'
  const nodeKey = {
    accessKeyId: 'AKIADEVNODE000000000',
    secretAccessKey: randomBytes(30).toString('base64'),
  }
  const issuer = await TokenIssuer.generate()
  const mock = new MockEksAuth({
    clusterName,
    region,
    associations,
    jwks: issuer.publicJwks(),
    nodeCredentials: [nodeKey],
  })
  const mockUrl = await mock.start()

  const dir = await mkdtemp(join(tmpdir(), 'pod-identity-agent-dev-'))
  const tokenFile = join(dir, 'eks-pod-identity-token')
  const writeToken = async (): Promise<void> => {
    const token = await issuer.mint({ namespace, serviceAccount, podName: `${serviceAccount}-dev` })
    await writeFile(tokenFile, token, { mode: 0o600 })
  }
  await writeToken()

  const config: ServerConfig = {
    clusterName,
    port,
    bindHosts: ['127.0.0.1'],
    probePort: 0,
    metricsAddress: '127.0.0.1',
    metricsPort: 0,
    endpoint: mockUrl,
    region,
    maxCacheSize: 2000,
    maxCredentialRetentionMs: 3 * 3_600_000,
    maxServiceQps: 3,
    rotateCredentials: false,
    verbosity: values.verbosity as ServerConfig['verbosity'],
  }
  let agent
  try {
    agent = await startAgent(config, { nodeCredentials: staticNodeCredentials(nodeKey) })
  } catch (err) {
    await mock.stop()
    await rm(dir, { recursive: true, force: true })
    throw new UsageError(`dev: ${(err as Error).message}`)
  }
  const listener = agent.listeners[0] as { host: string; port: number }
  const credentialsUrl = `http://${listener.host}:${listener.port}/v1/credentials`

  // Rotate the token like the kubelet does (well before its 24 h expiry).
  const rotation = setInterval(() => void writeToken(), 3_600_000)
  rotation.unref()

  const cleanup = async (): Promise<void> => {
    clearInterval(rotation)
    await agent.close(1000)
    await mock.stop()
    await rm(dir, { recursive: true, force: true })
  }

  console.log('pod-identity-agent dev: everything runs on this machine; the credentials are fake.')
  console.log('')
  console.log(
    `  mock EKS Auth  ${mockUrl}  (cluster ${clusterName}, ${namespace}/${serviceAccount} -> ${values['role-arn']})`,
  )
  console.log(`  agent          ${credentialsUrl}`)
  console.log(
    `  probes         http://localhost:${agent.probe.port}/readyz   metrics http://127.0.0.1:${agent.metricsServer.port}/metrics`,
  )
  console.log(
    `  token file     ${tokenFile}  (namespace ${namespace}, service account ${serviceAccount})`,
  )
  console.log('')

  try {
    const creds = await fromHttp({
      awsContainerCredentialsFullUri: credentialsUrl,
      awsContainerAuthorizationTokenFile: tokenFile,
    })()
    console.log(
      'Credentials fetched through the AWS SDK for JavaScript (fromHttp), as a pod would:',
    )
    console.log(`  AccessKeyId      ${creds.accessKeyId}`)
    console.log(`  SecretAccessKey  ${mask(creds.secretAccessKey)}`)
    console.log(`  SessionToken     ${mask(creds.sessionToken ?? '')}`)
    console.log(`  Expiration       ${creds.expiration?.toISOString() ?? '(none)'}`)
  } catch (err) {
    const e = err as Error & { Code?: string; Message?: string }
    console.error(
      `pod-identity-agent dev: the SDK could not get credentials: ${e.Code ?? ''} ${e.Message ?? e.message}`.trim(),
    )
    await cleanup()
    return 1
  }
  console.log('')
  console.log('Point your own SDK at it (from any shell on this machine):')
  console.log(`  export AWS_CONTAINER_CREDENTIALS_FULL_URI=${credentialsUrl}`)
  console.log(`  export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${tokenFile}`)

  if (values.once === true) {
    await cleanup()
    return 0
  }
  console.log('')
  console.log('Serving until Ctrl-C.')
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
  await cleanup()
  return 0
}
