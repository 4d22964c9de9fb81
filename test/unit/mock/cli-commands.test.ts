import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Hash } from '@smithy/hash-node'
import { SignatureV4 } from '@smithy/signature-v4'
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { runMockEksAuthCommand } from '../../../src/cli/mock-eks-auth-command.js'
import { runTokenCommand } from '../../../src/cli/token-command.js'
import { ConfigError } from '../../../src/config/values.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pia-cli-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})
afterEach(() => {
  vi.restoreAllMocks()
})

function captureStdout(): () => string[] {
  const lines: string[] = []
  vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args.join(' '))
  })
  return () => lines
}

async function usageErrorOf(run: Promise<number>): Promise<string> {
  const err = await run.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(ConfigError)
  const message = (err as Error).message
  expect(message).not.toContain('\n')
  return message
}

describe('runTokenCommand', () => {
  it('creates the key once, reuses it, writes the JWKS and prints a token', async () => {
    const key = join(dir, 'key.json')
    const jwksFile = join(dir, 'jwks.json')
    const out = captureStdout()
    const args = ['--namespace', 'default', '--service-account', 'app', '--key', key]
    expect(
      await runTokenCommand([...args, '--pod', 'app-1', '--node', 'n1', '--jwks-out', jwksFile]),
    ).toBe(0)
    expect((await stat(key)).mode & 0o777).toBe(0o600)
    const keyText = await readFile(key, 'utf8')
    const token = out()[0] as string
    const claims = decodeJwt(token)
    expect(claims).toMatchObject({
      aud: ['pods.eks.amazonaws.com'],
      sub: 'system:serviceaccount:default:app',
      'kubernetes.io': { namespace: 'default', pod: { name: 'app-1' }, node: { name: 'n1' } },
    })
    expect((claims.exp as number) - (claims.iat as number)).toBe(86400)
    const jwks = JSON.parse(await readFile(jwksFile, 'utf8')) as JSONWebKeySet
    await jwtVerify(token, createLocalJWKSet(jwks))

    expect(
      await runTokenCommand([
        ...args,
        '--expires',
        '10m',
        '--audience',
        'x',
        '--issuer',
        'https://i.example',
      ]),
    ).toBe(0)
    expect(await readFile(key, 'utf8')).toBe(keyText)
    const second = out()[1] as string
    expect(decodeJwt(second)).toMatchObject({ aud: ['x'], iss: 'https://i.example' })
    expect((decodeJwt(second).exp as number) - (decodeJwt(second).iat as number)).toBe(600)
    await jwtVerify(second, createLocalJWKSet(jwks))
  })

  it('writes the token to --out with mode 0600 and confirms on stderr', async () => {
    const out = captureStdout()
    const errs: string[] = []
    vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
      errs.push(a.join(' '))
    })
    const file = join(dir, 'token')
    const args = [
      '--namespace',
      'ns',
      '--service-account',
      'sa',
      '--key',
      join(dir, 'key.json'),
      '--out',
      file,
    ]
    expect(await runTokenCommand(args)).toBe(0)
    expect(out()).toEqual([])
    expect(errs).toHaveLength(1)
    expect(errs[0]).toContain(file)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(decodeJwt(await readFile(file, 'utf8')).sub).toBe('system:serviceaccount:ns:sa')
  })

  it('prints usage for --help', async () => {
    const out = captureStdout()
    expect(await runTokenCommand(['--help'])).toBe(0)
    expect(out()[0]).toMatch(/^Usage: pod-identity-agent token/)
  })

  it('turns bad flags into one-line ConfigErrors', async () => {
    const key = join(dir, 'k3.json')
    expect(await usageErrorOf(runTokenCommand(['--namespace', 'a', '--bogus']))).toMatch(
      /^token: unknown flag --bogus \(see pod-identity-agent token --help\)$/,
    )
    expect(await usageErrorOf(runTokenCommand(['--service-account', 'a', '--key', key]))).toMatch(
      /--namespace is required/,
    )
    expect(await usageErrorOf(runTokenCommand(['--namespace']))).toBe(
      'token: flag --namespace needs a value (see pod-identity-agent token --help)',
    )
    expect(
      await usageErrorOf(
        runTokenCommand([
          '--namespace',
          'a',
          '--service-account',
          'b',
          '--key',
          key,
          '--expires',
          'soon',
        ]),
      ),
    ).toMatch(/--expires "soon" is not a duration/)
    const broken = join(dir, 'broken.json')
    await writeFile(broken, 'nope')
    expect(
      await usageErrorOf(
        runTokenCommand(['--namespace', 'a', '--service-account', 'b', '--key', broken]),
      ),
    ).toMatch(/--key .*broken\.json: not JSON/)
  })
})

describe('runMockEksAuthCommand', () => {
  it('serves until aborted', async () => {
    const key = join(dir, 'key.json')
    const jwks = join(dir, 'mjwks.json')
    const assoc = join(dir, 'assoc.yaml')
    await writeFile(
      assoc,
      'associations:\n  - namespace: default\n    serviceAccount: app\n    roleArn: arn:aws:iam::111122223333:role/App\n',
    )
    const out = captureStdout()
    await runTokenCommand([
      '--namespace',
      'default',
      '--service-account',
      'app',
      '--key',
      key,
      '--jwks-out',
      jwks,
    ])
    const token = out()[0] as string

    const ac = new AbortController()
    const done = runMockEksAuthCommand(
      [
        '--associations',
        assoc,
        '--jwks',
        jwks,
        '--port',
        '0',
        '--cluster-name',
        'c1',
        '--credential-duration',
        '1h',
      ],
      {
        signal: ac.signal,
        env: { MOCK_NODE_ACCESS_KEY_ID: 'AKID', MOCK_NODE_SECRET_ACCESS_KEY: 'S' },
      },
    )
    await vi.waitFor(() =>
      expect(out()[1]).toMatch(/^mock EKS Auth listening on http:\/\/127\.0\.0\.1:\d+$/),
    )
    const base = (out()[1] as string).split(' ').pop() as string
    try {
      const url = new URL(base)
      const body = JSON.stringify({ token })
      const path = '/clusters/c1/assume-role-for-pod-identity'
      const signed = await new SignatureV4({
        service: 'eks-auth',
        region: 'us-west-2',
        credentials: { accessKeyId: 'AKID', secretAccessKey: 'S' },
        sha256: Hash.bind(null, 'sha256'),
      }).sign({
        method: 'POST',
        protocol: 'http:',
        hostname: url.hostname,
        path,
        query: {},
        headers: { host: url.host, 'content-type': 'application/json' },
        body,
      })
      const res = await request(`${base}${path}`, { method: 'POST', headers: signed.headers, body })
      expect(res.statusCode).toBe(200)
      const json = (await res.body.json()) as { credentials: { expiration: number } }
      expect(json.credentials.expiration).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 3600)
    } finally {
      ac.abort()
    }
    expect(await done).toBe(0)
  })

  it('prints usage with every flag for --help', async () => {
    const out = captureStdout()
    expect(await runMockEksAuthCommand(['--help'])).toBe(0)
    for (const flag of [
      '--associations',
      '--jwks',
      '--host',
      '--port',
      '--cluster-name',
      '--region',
      '--issuer',
      '--credential-duration',
      '--latency',
      '--throttle-qps',
      '--error-rate',
      '--error-status',
      '--node-access-key-id',
      '--node-secret-access-key',
    ]) {
      expect(out()[0]).toContain(flag)
    }
  })

  it('turns bad flags and files into one-line ConfigErrors', async () => {
    const jwks = join(dir, 'mjwks2.json')
    await writeFile(jwks, '{"keys": []}')
    const assoc = join(dir, 'bad-assoc.json')
    await writeFile(
      assoc,
      '{"associations": [{"namespace": "default", "serviceAccount": "app", "roleArn": "foo"}]}',
    )
    const env = {}
    expect(await usageErrorOf(runMockEksAuthCommand(['--jwks', jwks], { env }))).toMatch(
      /--associations is required/,
    )
    expect(
      await usageErrorOf(runMockEksAuthCommand(['--associations', assoc, '--jwks', jwks], { env })),
    ).toMatch(/bad-assoc\.json: associations\[0\]\.roleArn: expected an IAM role ARN/)
    expect(
      await usageErrorOf(
        runMockEksAuthCommand(['--associations', assoc, '--jwks', jwks, '--error-status', '502'], {
          env,
        }),
      ),
    ).toMatch(/--error-status "502" must be 500 or 503/)
    expect(
      await usageErrorOf(
        runMockEksAuthCommand(['--associations', assoc, '--jwks', jwks, '--error-rate', '1.5'], {
          env,
        }),
      ),
    ).toMatch(/--error-rate "1.5" must be a probability from 0 to 1/)
    expect(
      await usageErrorOf(
        runMockEksAuthCommand(
          ['--associations', assoc, '--jwks', jwks, '--node-access-key-id', 'A'],
          { env },
        ),
      ),
    ).toMatch(/set both or neither/)
    const good = join(dir, 'good-assoc.json')
    await writeFile(good, '{"associations": []}')
    expect(
      await usageErrorOf(runMockEksAuthCommand(['--associations', good, '--jwks', jwks], { env })),
    ).toMatch(/--jwks .*mjwks2\.json: expected \{"keys": \[\.\.\.\]\} with at least one public key/)
    expect(
      await usageErrorOf(
        runMockEksAuthCommand(['--associations', good, '--jwks', join(dir, 'nope.json')], { env }),
      ),
    ).toMatch(/--jwks .*nope\.json: cannot read \(ENOENT\)/)
  })
})
