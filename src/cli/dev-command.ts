// `pod-identity-agent dev`: the one-command local run. Mock EKS Auth (and mock STS, with an STS
// credential source) + a minted token in a file + the agent on loopback, then proof through the
// real AWS SDK provider pods use (fromHttp), and the two env vars that point any SDK at it. Runs
// until Ctrl-C (or exits after the proof with --once).

import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildServerConfig } from '../config/server-config.js'
import { ConfigError, parseLogLevel, parsePort } from '../config/values.js'
import { parseFlags } from './flags.js'

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
  --credential-source SRC  eks-auth (default), sts (a mock STS and an associations file, as on a
                           cluster that is not EKS), or eks-auth-then-sts (both mocks)
  --once                   exit after the proof instead of serving until Ctrl-C (the token
                           file is kept, to inspect)
  -v, --verbosity LEVEL    agent log level (default warn)
  -h, --help               show this help`

function printEnv(credentialsUrl: string, tokenFile: string): void {
  console.log(`  export AWS_CONTAINER_CREDENTIALS_FULL_URI=${credentialsUrl}`)
  console.log(`  export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=${tokenFile}`)
}

function inCommand<T>(parse: () => T): T {
  try {
    return parse()
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`dev: ${err.message}`)
    throw err
  }
}

function mask(secret: string): string {
  return `${'*'.repeat(8)} (${secret.length} characters, not shown)`
}

export async function runDevCommand(argv: string[]): Promise<number> {
  const values = parseFlags('dev', argv, {
    port: { type: 'string', default: '0' },
    namespace: { type: 'string', default: 'default' },
    'service-account': { type: 'string', default: 'demo' },
    'role-arn': { type: 'string', default: 'arn:aws:iam::111122223333:role/demo-app' },
    'credential-source': { type: 'string', default: 'eks-auth' },
    once: { type: 'boolean', default: false },
    verbosity: { type: 'string', short: 'v', default: 'warn' },
    help: { type: 'boolean', short: 'h' },
  })
  if (values.help === true) {
    console.log(USAGE)
    return 0
  }
  const port = inCommand(() => parsePort('--port', values.port))
  const verbosity = inCommand(() => parseLogLevel('--verbosity', values.verbosity))
  const namespace = values.namespace
  const serviceAccount = values['service-account']

  const source = values['credential-source']
  const [
    { TokenIssuer, DEFAULT_ISSUER },
    { MockEksAuth },
    { MockSts },
    { parseAssociations },
    { startAgent },
    { staticNodeCredentials },
    { fromHttp },
  ] = await Promise.all([
    import('../mock/token-issuer.js'),
    import('../mock/mock-eks-auth.js'),
    import('../mock/mock-sts.js'),
    import('../associations/associations.js'),
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
    throw new ConfigError(`dev: ${(err as Error).message}`)
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
  const withSts = source !== 'eks-auth'
  const sts = withSts ? new MockSts({ associations, jwks: issuer.publicJwks() }) : undefined
  const stsUrl = await sts?.start()

  const dir = await mkdtemp(join(tmpdir(), 'pod-identity-agent-dev-'))
  const associationsFile = join(dir, 'associations.json')
  if (withSts) await writeFile(associationsFile, JSON.stringify({ associations }, null, 2))
  // The agent verifies tokens on the node against the issuer's keys, as --token-jwks does.
  const jwksFile = join(dir, 'jwks.json')
  await writeFile(jwksFile, JSON.stringify(issuer.publicJwks()))
  const tokenFile = join(dir, 'eks-pod-identity-token')
  const writeToken = async (): Promise<void> => {
    const token = await issuer.mint({ namespace, serviceAccount, podName: `${serviceAccount}-dev` })
    await writeFile(tokenFile, token, { mode: 0o600 })
  }
  await writeToken()

  let agent
  try {
    const config = buildServerConfig(
      {
        clusterName,
        port: String(port),
        bindHosts: ['127.0.0.1'],
        probePort: '0',
        metricsAddress: '127.0.0.1',
        metricsPort: '0',
        endpoint: mockUrl,
        verbosity,
        credentialSource: source,
        tokenJwks: jwksFile,
        tokenIssuer: DEFAULT_ISSUER,
        ...(withSts ? { associationsFile, stsEndpoint: stsUrl } : {}),
      },
      { AWS_REGION: region },
    )
    agent = await startAgent(config, { nodeCredentials: staticNodeCredentials(nodeKey) })
  } catch (err) {
    await mock.stop()
    await sts?.stop()
    await rm(dir, { recursive: true, force: true })
    throw new ConfigError(`dev: ${(err as Error).message}`)
  }
  const listener = agent.listeners[0] as { host: string; port: number }
  const credentialsUrl = `http://${listener.host}:${listener.port}/v1/credentials`

  // Rotate the token like the kubelet does (well before its 24 h expiry).
  const rotation = setInterval(() => void writeToken(), 3_600_000)
  rotation.unref()

  const cleanup = async ({ keepTokenFile = false } = {}): Promise<void> => {
    clearInterval(rotation)
    await agent.close(1000)
    await mock.stop()
    await sts?.stop()
    if (!keepTokenFile) await rm(dir, { recursive: true, force: true })
  }

  console.log('pod-identity-agent dev: everything runs on this machine; the credentials are fake.')
  console.log('')
  console.log(
    `  mock EKS Auth  ${mockUrl}  (cluster ${clusterName}, ${namespace}/${serviceAccount} -> ${values['role-arn']})`,
  )
  if (stsUrl !== undefined) {
    console.log(`  mock STS       ${stsUrl}  (associations file ${associationsFile})`)
  }
  console.log(`  agent          ${credentialsUrl}  (credential source ${source})`)
  console.log(
    `  probes         http://localhost:${agent.probe.port}/readyz   metrics http://127.0.0.1:${agent.metricsServer.port}/metrics`,
  )
  console.log(
    `  token file     ${tokenFile}  (namespace ${namespace}, service account ${serviceAccount})`,
  )
  console.log(`  token keys     ${jwksFile}  (tokens verified on the node; an entry per pod)`)
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
    console.log(
      `  issued by        ${mock.stats.byOutcome.success === 1 ? 'EKS Auth (mock)' : 'STS (mock)'}`,
    )
  } catch (err) {
    const e = err as Error & { Code?: string; Message?: string }
    console.error(
      `pod-identity-agent dev: the SDK could not get credentials: ${e.Code ?? ''} ${e.Message ?? e.message}`.trim(),
    )
    await cleanup()
    return 1
  }
  console.log('')
  if (values.once === true) {
    await cleanup({ keepTokenFile: true })
    console.log('A pod finds the agent through these two variables:')
    printEnv(credentialsUrl, tokenFile)
    console.log('')
    console.log(
      '--once: the agent and the mock have stopped (run without --once to keep them serving).',
    )
    console.log(`The token file stays at ${tokenFile}, to inspect; delete it when done.`)
    return 0
  }
  console.log('Point your own SDK at it (from any shell on this machine):')
  printEnv(credentialsUrl, tokenFile)
  console.log('')
  console.log('Serving until Ctrl-C (the token file is removed then).')
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
  await cleanup()
  return 0
}
