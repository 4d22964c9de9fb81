// `pod-identity-agent token`: mint a projected service-account token for local runs, signed with a
// private JWK kept in a file (created on first use), and optionally write the public JWKS the mock
// EKS Auth server verifies against.

import { chmod, readFile, writeFile } from 'node:fs/promises'
import type { JWK } from 'jose'
import { formatDurationMs, parseDurationMs } from '../config/duration.js'
import { ConfigError } from '../config/values.js'
import {
  DEFAULT_ISSUER,
  DEFAULT_TOKEN_LIFETIME_SECONDS,
  POD_IDENTITY_AUDIENCE,
  TokenIssuer,
} from '../mock/token-issuer.js'
import { parseFlags, valueFlags } from './flags.js'

export const TOKEN_USAGE = `Usage: pod-identity-agent token --namespace NS --service-account SA --key FILE [options]

Mint a Kubernetes-style projected service-account token (the claims a kubelet-issued
pods.eks.amazonaws.com token carries) for local runs against mock-eks-auth.

Required:
  --namespace NS            namespace of the pod
  --service-account SA      service account of the pod
  --key FILE                private signing key (JWK); created with mode 0600 when missing, then reused

Options:
  --pod NAME                pod name (default: <service-account>-local)
  --node NAME               node name (default: local-node)
  --expires DURATION        token lifetime, e.g. 24h, 90m, 10s (default: ${formatDurationMs(DEFAULT_TOKEN_LIFETIME_SECONDS * 1000)})
  --audience AUDIENCE       token audience (default: ${POD_IDENTITY_AUDIENCE})
  --issuer URL              token issuer (default: ${DEFAULT_ISSUER})
  --jwks-out FILE           also write the public key set, for mock-eks-auth --jwks
  --out FILE                write the token to FILE (mode 0600) instead of printing it
  -h, --help                show this help
`

const OPTIONS = valueFlags(
  'namespace',
  'service-account',
  'pod',
  'node',
  'expires',
  'audience',
  'issuer',
  'key',
  'jwks-out',
  'out',
)

/** Run the token command; returns the exit code. @throws ConfigError on a bad or missing flag. */
export async function runTokenCommand(argv: string[]): Promise<number> {
  const values = parseFlags('token', argv, OPTIONS)
  if (values.help === true) {
    console.log(TOKEN_USAGE)
    return 0
  }
  const namespace = required(values.namespace, '--namespace', 'the pod namespace')
  const serviceAccount = required(
    values['service-account'],
    '--service-account',
    'the service account name',
  )
  const keyFile = required(values.key, '--key', 'a private JWK file (created when missing)')
  let expiresInSeconds = DEFAULT_TOKEN_LIFETIME_SECONDS
  if (values.expires !== undefined) {
    const ms = parseDurationMs(values.expires)
    if (ms === undefined || ms < 1000) {
      throw new ConfigError(
        `--expires ${JSON.stringify(values.expires)} is not a duration of at least 1s (e.g. 24h, 90m, 10s)`,
      )
    }
    expiresInSeconds = Math.floor(ms / 1000)
  }
  if (values.issuer !== undefined && !isHttpUrl(values.issuer)) {
    throw new ConfigError(`--issuer ${JSON.stringify(values.issuer)} is not an http(s) URL`)
  }
  if (values.audience === '') throw new ConfigError('--audience must not be empty')

  const issuer = await loadOrCreateKey(keyFile)
  if (values['jwks-out'] !== undefined) {
    await writeOut(
      values['jwks-out'],
      `${JSON.stringify(issuer.publicJwks(), null, 2)}\n`,
      0o644,
      '--jwks-out',
    )
  }
  const token = await issuer.mint({
    namespace,
    serviceAccount,
    expiresInSeconds,
    ...(values.pod !== undefined ? { podName: values.pod } : {}),
    ...(values.node !== undefined ? { nodeName: values.node } : {}),
    ...(values.audience !== undefined ? { audience: values.audience } : {}),
    ...(values.issuer !== undefined ? { issuer: values.issuer } : {}),
  })
  if (values.out !== undefined) {
    await writeOut(values.out, token, 0o600, '--out')
    console.error(
      `wrote token for ${namespace}/${serviceAccount} to ${values.out} (expires in ${formatDurationMs(expiresInSeconds * 1000)})`,
    )
  } else {
    console.log(token)
  }
  return 0
}

async function loadOrCreateKey(file: string): Promise<TokenIssuer> {
  let text: string | undefined
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ConfigError(`--key ${file}: cannot read (${errText(err)})`)
    }
  }
  if (text === undefined) {
    const issuer = await TokenIssuer.generate()
    try {
      // 'wx': never overwrite a key another process created meanwhile.
      await writeFile(file, `${JSON.stringify(issuer.exportPrivateJwk(), null, 2)}\n`, {
        mode: 0o600,
        flag: 'wx',
      })
      return issuer
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new ConfigError(`--key ${file}: cannot create (${errText(err)})`)
      }
      text = await readFile(file, 'utf8')
    }
  }
  let jwk: JWK
  try {
    jwk = JSON.parse(text) as JWK
  } catch {
    throw new ConfigError(
      `--key ${file}: not JSON; expected a private JWK as written by this command`,
    )
  }
  try {
    return await TokenIssuer.fromPrivateJwk(jwk)
  } catch (err) {
    throw new ConfigError(`--key ${file}: not a usable private JWK (${errText(err)})`)
  }
}

async function writeOut(file: string, text: string, mode: number, flag: string): Promise<void> {
  try {
    await writeFile(file, text, { mode })
    await chmod(file, mode)
  } catch (err) {
    throw new ConfigError(`${flag} ${file}: cannot write (${errText(err)})`)
  }
}

function required(value: string | undefined, flag: string, what: string): string {
  if (value === undefined || value === '') throw new ConfigError(`${flag} is required: ${what}`)
  return value
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s)
    return u.protocol === 'https:' || u.protocol === 'http:'
  } catch {
    return false
  }
}

function errText(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message
}
