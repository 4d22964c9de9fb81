import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose'
import { beforeAll, describe, expect, it } from 'vitest'
import { TokenIssuer } from '../../../src/mock/token-issuer.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

describe('TokenIssuer', () => {
  let issuer: TokenIssuer
  beforeAll(async () => {
    issuer = await TokenIssuer.generate()
  })

  it('mints the projected-token claim layout', async () => {
    const nowMs = Date.UTC(2026, 0, 1, 12)
    const token = await issuer.mint({
      namespace: 'default',
      serviceAccount: 'app',
      podName: 'app-7d9f',
      podUid: '11111111-2222-3333-4444-555555555555',
      nodeName: 'node-a',
      nowMs,
      expiresInSeconds: 3600,
    })
    const header = decodeProtectedHeader(token)
    expect(header).toEqual({ alg: 'RS256', kid: issuer.kid, typ: 'JWT' })
    const claims = decodeJwt(token)
    const iat = nowMs / 1000
    expect(claims).toMatchObject({
      aud: ['pods.eks.amazonaws.com'],
      iss: 'https://oidc.eks.local.example/id/LOCAL',
      sub: 'system:serviceaccount:default:app',
      iat,
      nbf: iat,
      exp: iat + 3600,
      'kubernetes.io': {
        namespace: 'default',
        serviceaccount: { name: 'app' },
        pod: { name: 'app-7d9f', uid: '11111111-2222-3333-4444-555555555555' },
        node: { name: 'node-a' },
      },
    })
    expect(claims.jti).toMatch(UUID)
    const k8s = claims['kubernetes.io'] as {
      serviceaccount: { uid: string }
      node: { uid: string }
    }
    expect(k8s.serviceaccount.uid).toMatch(UUID)
    expect(k8s.node.uid).toMatch(UUID)
  })

  it('uses defaults and honours overrides', async () => {
    const token = await issuer.mint({
      namespace: 'ns',
      serviceAccount: 'sa',
      audience: 'sts.amazonaws.com',
      issuer: 'https://issuer.example',
      nowMs: 1_000_000,
      notBeforeMs: 2_000_000,
    })
    const claims = decodeJwt(token)
    expect(claims).toMatchObject({
      aud: ['sts.amazonaws.com'],
      iss: 'https://issuer.example',
      iat: 1000,
      nbf: 2000,
      exp: 1000 + 86400,
    })
    const k8s = claims['kubernetes.io'] as {
      pod: { name: string; uid: string }
      node: { name: string }
    }
    expect(k8s.pod.name).toBe('sa-local')
    expect(k8s.pod.uid).toMatch(UUID)
    expect(k8s.node.name).toBe('local-node')
  })

  it('signs tokens that verify against publicJwks', async () => {
    const jwks = issuer.publicJwks()
    expect(jwks.keys).toHaveLength(1)
    const key = jwks.keys[0]!
    expect(key).toMatchObject({ kty: 'RSA', kid: issuer.kid, alg: 'RS256', use: 'sig' })
    expect(key).not.toHaveProperty('d')
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), {
      audience: 'pods.eks.amazonaws.com',
    })
    expect(payload.sub).toBe('system:serviceaccount:default:app')
  })

  it('round-trips through the private JWK', async () => {
    const jwk = issuer.exportPrivateJwk()
    expect(jwk.d).toBeTypeOf('string')
    const again = await TokenIssuer.fromPrivateJwk(jwk)
    expect(again.kid).toBe(issuer.kid)
    const token = await again.mint({ namespace: 'a', serviceAccount: 'b' })
    await expect(jwtVerify(token, createLocalJWKSet(issuer.publicJwks()))).resolves.toBeDefined()
  })

  it('supports EC keys and refuses public-only JWKs', async () => {
    const ec = await TokenIssuer.generate('ES256')
    const token = await ec.mint({ namespace: 'a', serviceAccount: 'b' })
    expect(decodeProtectedHeader(token).alg).toBe('ES256')
    await expect(jwtVerify(token, createLocalJWKSet(ec.publicJwks()))).resolves.toBeDefined()
    await expect(TokenIssuer.fromPrivateJwk(ec.publicJwks().keys[0]!)).rejects.toThrow(
      /not a private key/,
    )
  })
})
