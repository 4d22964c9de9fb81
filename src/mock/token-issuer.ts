// Mints Kubernetes-style projected service-account tokens (the claim layout of
// kubernetes/kubernetes pkg/serviceaccount/claims.go) for local runs of the agent and the mock.

import { createHash, randomUUID } from 'node:crypto'
import {
  SignJWT,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
} from 'jose'

export const POD_IDENTITY_AUDIENCE = 'pods.eks.amazonaws.com'
export const DEFAULT_ISSUER = 'https://oidc.eks.local.example/id/LOCAL'
export const DEFAULT_TOKEN_LIFETIME_SECONDS = 86_400

/** Signing algorithms the issuer accepts. */
export type TokenAlgorithm =
  'RS256' | 'RS384' | 'RS512' | 'PS256' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA'

const SUPPORTED: readonly string[] = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
]
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const

export interface MintOptions {
  namespace: string
  serviceAccount: string
  /** Default `<serviceAccount>-local`. */
  podName?: string
  /** Default a random UUID. */
  podUid?: string
  /** Default `local-node`. */
  nodeName?: string
  /** Default a UUID derived from the node name (stable across mints). */
  nodeUid?: string
  /** Default a UUID derived from namespace + service account (stable across mints). */
  serviceAccountUid?: string
  /** Default `pods.eks.amazonaws.com`. */
  audience?: string
  /** Default `https://oidc.eks.local.example/id/LOCAL`. */
  issuer?: string
  /** Default 86400 (24 h). */
  expiresInSeconds?: number
  /** Issue time, epoch ms; default now. */
  nowMs?: number
  /** `nbf`, epoch ms; default the issue time. */
  notBeforeMs?: number
}

/** The `kubernetes.io` private claim of a pod-bound projected token. */
export interface KubernetesClaim {
  namespace: string
  serviceaccount: { name: string; uid: string }
  pod: { name: string; uid: string }
  node: { name: string; uid: string }
}

/** A signing key plus the helpers to mint projected service-account tokens with it. */
export class TokenIssuer {
  readonly alg: TokenAlgorithm
  readonly kid: string
  readonly #privateKey: CryptoKey
  readonly #privateJwk: JWK
  readonly #publicJwk: JWK

  private constructor(
    alg: TokenAlgorithm,
    kid: string,
    key: CryptoKey,
    privateJwk: JWK,
    publicJwk: JWK,
  ) {
    this.alg = alg
    this.kid = kid
    this.#privateKey = key
    this.#privateJwk = privateJwk
    this.#publicJwk = publicJwk
  }

  /** A new random key pair (RSA 2048 for RS256). */
  static async generate(alg: TokenAlgorithm = 'RS256'): Promise<TokenIssuer> {
    assertSupported(alg)
    const { privateKey } = await generateKeyPair(alg, { extractable: true })
    const jwk = await exportJWK(privateKey)
    return TokenIssuer.fromPrivateJwk({ ...jwk, alg })
  }

  /**
   * Load a private JWK (as written by exportPrivateJwk). The algorithm comes from `alg`, or is
   * inferred from the key type.
   * @throws Error when the JWK is not a usable private signing key.
   */
  static async fromPrivateJwk(jwk: JWK): Promise<TokenIssuer> {
    if (jwk === null || typeof jwk !== 'object' || typeof jwk.kty !== 'string') {
      throw new Error('not a JWK: expected an object with "kty"')
    }
    if (typeof jwk.d !== 'string') {
      throw new Error('the JWK is not a private key (it has no "d" member)')
    }
    const alg = (jwk.alg ?? inferAlg(jwk)) as TokenAlgorithm
    assertSupported(alg)
    const key = await importJWK(jwk, alg)
    if (key instanceof Uint8Array) throw new Error('symmetric JWKs are not supported')
    const publicBase: JWK = { ...jwk }
    for (const m of PRIVATE_MEMBERS) delete publicBase[m]
    delete publicBase.key_ops
    delete publicBase.ext
    delete publicBase.kid
    delete publicBase.use
    delete publicBase.alg
    const kid = jwk.kid ?? (await calculateJwkThumbprint(publicBase))
    const publicJwk: JWK = { ...publicBase, kid, alg, use: 'sig' }
    const privateJwk: JWK = { ...jwk, kid, alg }
    delete privateJwk.key_ops
    delete privateJwk.ext
    return new TokenIssuer(alg, kid, key, privateJwk, publicJwk)
  }

  /** The private key as a JWK (with `kid` and `alg`), to store and reload with fromPrivateJwk. */
  exportPrivateJwk(): JWK {
    return { ...this.#privateJwk }
  }

  /** The public key set a verifier (the mock EKS Auth server) needs. */
  publicJwks(): JSONWebKeySet {
    return { keys: [{ ...this.#publicJwk }] }
  }

  /** Sign a projected service-account token for a pod. */
  async mint(opts: MintOptions): Promise<string> {
    const nowMs = opts.nowMs ?? Date.now()
    const iat = Math.floor(nowMs / 1000)
    const nbf = Math.floor((opts.notBeforeMs ?? nowMs) / 1000)
    const exp = iat + (opts.expiresInSeconds ?? DEFAULT_TOKEN_LIFETIME_SECONDS)
    const nodeName = opts.nodeName ?? 'local-node'
    const k8s: KubernetesClaim = {
      namespace: opts.namespace,
      serviceaccount: {
        name: opts.serviceAccount,
        uid:
          opts.serviceAccountUid ??
          stableUuid(`serviceaccount/${opts.namespace}/${opts.serviceAccount}`),
      },
      pod: {
        name: opts.podName ?? `${opts.serviceAccount}-local`,
        uid: opts.podUid ?? randomUUID(),
      },
      node: { name: nodeName, uid: opts.nodeUid ?? stableUuid(`node/${nodeName}`) },
    }
    return new SignJWT({ 'kubernetes.io': k8s })
      .setProtectedHeader({ alg: this.alg, kid: this.kid, typ: 'JWT' })
      .setAudience([opts.audience ?? POD_IDENTITY_AUDIENCE])
      .setExpirationTime(exp)
      .setIssuedAt(iat)
      .setIssuer(opts.issuer ?? DEFAULT_ISSUER)
      .setJti(randomUUID())
      .setNotBefore(nbf)
      .setSubject(`system:serviceaccount:${opts.namespace}:${opts.serviceAccount}`)
      .sign(this.#privateKey)
  }
}

function assertSupported(alg: string): void {
  if (!SUPPORTED.includes(alg)) {
    throw new Error(`unsupported signing algorithm "${alg}"; allowed: ${SUPPORTED.join(', ')}`)
  }
}

function inferAlg(jwk: JWK): string {
  if (jwk.kty === 'RSA') return 'RS256'
  if (jwk.kty === 'EC') {
    if (jwk.crv === 'P-256') return 'ES256'
    if (jwk.crv === 'P-384') return 'ES384'
    if (jwk.crv === 'P-521') return 'ES512'
  }
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA'
  throw new Error(`cannot tell the algorithm of a ${jwk.kty} key; set "alg" in the JWK`)
}

/** A UUID-shaped id derived from a name, so repeated mints agree on service account and node uids. */
function stableUuid(name: string): string {
  const h = createHash('sha256').update(name).digest()
  h[6] = ((h[6] as number) & 0x0f) | 0x50
  h[8] = ((h[8] as number) & 0x3f) | 0x80
  const x = h.subarray(0, 16).toString('hex')
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`
}
