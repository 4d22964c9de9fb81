// TokenVerifier over issuer keys from a file or a URL: what each bad token is refused with, what
// a good one names, and that keys that cannot be loaded leave tokens unverified (said once).

import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import { AgentError } from '../../../src/errors.js'
import { DEFAULT_ISSUER, TokenIssuer } from '../../../src/mock/token-issuer.js'
import type { IssuerKeys } from '../../../src/token/issuer-keys.js'
import { openIssuerKeys } from '../../../src/token/issuer-keys.js'
import { checkToken } from '../../../src/token/validity.js'
import type { ValidationResult } from '../../../src/token/verify-token.js'
import { TokenVerifier } from '../../../src/token/verify-token.js'
import { ManualClock } from '../../../src/util/clock.js'
import { createLogger } from '../../../src/util/logger.js'
import { logLines } from '../../helpers/log-lines.js'
import { until } from '../../helpers/until.js'

const opened: IssuerKeys[] = []
afterEach(async () => {
  await Promise.all(opened.splice(0).map((k) => k.close()))
})

async function setup(jwks?: string) {
  const clock = new ManualClock(Date.now())
  const issuer = await TokenIssuer.generate()
  const dir = await mkdtemp(join(tmpdir(), 'pia-verify-'))
  const file = join(dir, 'jwks.json')
  await writeFile(file, JSON.stringify(issuer.publicJwks()))
  const rejected: string[] = []
  const keys = await openIssuerKeys({
    jwks: jwks ?? file,
    clock,
    onFileRejected: (r) => rejected.push(r),
  })
  opened.push(keys)
  const results: ValidationResult[] = []
  const logs = logLines()
  const verifier = new TokenVerifier({
    keys,
    issuer: DEFAULT_ISSUER,
    audience: 'pods.eks.amazonaws.com',
    clock,
    logger: createLogger('info', logs),
    onResult: (r) => results.push(r),
  })
  const verify = (token: string) => verifier.verify(checkToken(token, clock.now()))
  const mint = (over = {}) =>
    issuer.mint({
      namespace: 'default',
      serviceAccount: 'app',
      podName: 'web',
      podUid: 'u-1',
      nowMs: clock.now(),
      ...over,
    })
  return { clock, issuer, file, rejected, results, logs, verify, mint }
}

async function refusal(
  p: Promise<unknown>,
): Promise<{ code: string; message: string; status: number }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(AgentError)
  const e = err as AgentError
  return { code: e.code, message: e.message, status: e.statusCode }
}

describe('TokenVerifier', () => {
  it('a good token names its pod', async () => {
    const s = await setup()
    expect(await s.verify(await s.mint())).toEqual({
      namespace: 'default',
      serviceAccount: 'app',
      podName: 'web',
      podUid: 'u-1',
    })
    expect(s.results).toEqual(['accepted'])
  })

  it('refuses each kind of bad token with its own code, 400', async () => {
    const s = await setup()
    const stranger = await TokenIssuer.generate()
    const sameKid = await TokenIssuer.fromPrivateJwk({
      ...(await TokenIssuer.generate()).exportPrivateJwk(),
      kid: s.issuer.kid,
    })
    const hmac = await new SignJWT({ sub: 'system:serviceaccount:default:app' })
      .setProtectedHeader({ alg: 'HS256', kid: s.issuer.kid })
      .setIssuer(DEFAULT_ISSUER)
      .setAudience('pods.eks.amazonaws.com')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('a-shared-secret-of-32-bytes-long!'))
    s.clock.advance(1000) // an unknown kid then looks at the key file again at once
    const cases: [string, string][] = [
      [
        await stranger.mint({ namespace: 'default', serviceAccount: 'app', nowMs: s.clock.now() }),
        'InvalidTokenSignature',
      ],
      [
        await sameKid.mint({ namespace: 'default', serviceAccount: 'app', nowMs: s.clock.now() }),
        'InvalidTokenSignature',
      ],
      [hmac, 'InvalidTokenSignature'],
      [await s.mint({ issuer: 'https://other.example' }), 'InvalidTokenIssuer'],
      [await s.mint({ audience: 'vault' }), 'InvalidTokenAudience'],
    ]
    for (const [token, code] of cases) {
      const r = await refusal(s.verify(token))
      expect(r.code).toBe(code)
      expect(r.status).toBe(400)
      expect(r.message).not.toContain(token)
    }
    expect(s.results).toEqual([
      'unknown_key',
      'bad_signature',
      'bad_signature',
      'wrong_issuer',
      'wrong_audience',
    ])
  })

  it('a key added to the file is picked up at once, looked for after the cooldown; a broken file keeps the keys', async () => {
    const s = await setup()
    const next = await TokenIssuer.generate()
    const token = await next.mint({
      namespace: 'default',
      serviceAccount: 'app',
      nowMs: s.clock.now(),
    })
    const unknown = s.verify(token)
    await until(() => s.clock.pendingTimers > 1, 'the wait for the cooldown')
    s.clock.advance(1000) // the cooldown since the last look
    expect((await refusal(unknown)).code).toBe('InvalidTokenSignature')
    await writeFile(
      s.file,
      JSON.stringify({ keys: [...s.issuer.publicJwks().keys, ...next.publicJwks().keys] }),
    )
    const added = s.verify(token)
    await until(() => s.clock.pendingTimers > 1, 'the wait for the cooldown') // and the periodic look
    s.clock.advance(1000)
    expect(await added).toMatchObject({ namespace: 'default' })
    await writeFile(s.file, '{"keys": "nope"')
    s.clock.advance(5000) // the periodic look
    await until(() => s.rejected.length === 1, 'the broken file refused')
    expect(await s.verify(await s.mint())).toMatchObject({ podUid: 'u-1' })
  })

  it('keys that cannot be fetched leave tokens unverified, said once in the log', async () => {
    const s = await setup('http://127.0.0.1:9/openid/v1/jwks')
    expect(await s.verify(await s.mint())).toBeUndefined()
    expect(await s.verify(await s.mint())).toBeUndefined()
    expect(s.results).toEqual(['keys_unavailable', 'keys_unavailable'])
    const warned = s.logs.lines.filter((l) => l.includes('token_verification_unavailable'))
    expect(warned).toHaveLength(1)
    expect(warned[0]).toContain('127.0.0.1:9')
  })

  it('an unreadable or broken key file stops start-up with one line', async () => {
    const clock = new ManualClock()
    await expect(openIssuerKeys({ jwks: '/nonexistent/jwks.json', clock })).rejects.toThrow(
      /^--token-jwks \/nonexistent\/jwks.json: cannot read the file: ENOENT/,
    )
    const dir = await mkdtemp(join(tmpdir(), 'pia-verify-'))
    await writeFile(join(dir, 'k'), '{"keys": []}')
    await expect(openIssuerKeys({ jwks: join(dir, 'k'), clock })).rejects.toThrow(
      'is not a JWKS document; expected {"keys": [...]} with at least one key',
    )
  })
})
