// A local EKS Auth `AssumeRoleForPodIdentity` endpoint with the real restJson1 wire format:
// SigV4 checks, token signatures verified against a JWKS, associations from a list, fault
// injection (latency, throttling, 5xx, dead sockets) and admin endpoints under /_mock/ for
// out-of-process control. Over 400 lines on purpose: routing, validation, faults and the
// restJson1 answers are one wire contract, easier to check against protocol.md in one file.

import { createHash, randomBytes, randomUUID } from 'node:crypto'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  createLocalJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
} from 'jose'
import { createServer } from 'node:http'
import {
  associationIdOf,
  associationKey,
  parseAssociations,
  parseRoleArn,
  type Association,
} from '../associations/associations.js'
import { isClusterName } from '../config/values.js'
import { kubernetesSubject } from '../token/parse-token.js'
import { EKS_AUTH_ERRORS } from '../upstream/error-codes.js'
import type { AwsAuthErrorCode, EksAuthErrorCode } from '../upstream/error-codes.js'
import { TokenBucket } from '../util/token-bucket.js'
import { SigV4Checker, type NodeCredential } from './sigv4-check.js'
import { POD_IDENTITY_AUDIENCE } from './token-issuer.js'

/** Injected failures. */
export interface Faults {
  /** Delay before every answer, ms. */
  latencyMs: number
  /** Token bucket rate = burst; excess gets 429 ThrottlingException. 0 = off. */
  throttleQps: number
  /** Probability (0..1) of answering with `errorStatus` instead of doing the work. */
  errorRate: number
  /** 500 InternalServerException or 503 ServiceUnavailableException. */
  errorStatus: 500 | 503
  /** Destroy sockets of incoming API requests without answering (admin endpoints still work). */
  down: boolean
}

export const DEFAULT_FAULTS: Readonly<Faults> = {
  latencyMs: 0,
  throttleQps: 0,
  errorRate: 0,
  errorStatus: 503,
  down: false,
}

export interface MockEksAuthOptions {
  /** Default `127.0.0.1`. */
  host?: string
  /** Default 0 (any free port). */
  port?: number
  /** When set, any other cluster in the path gets 404 ResourceNotFoundException. */
  clusterName?: string
  /** Region in ARNs and the required SigV4 scope. Default `us-west-2`. */
  region?: string
  associations: readonly Association[]
  /** Public keys tokens must be signed with. */
  jwks: JSONWebKeySet
  /** Required `iss` of tokens; not checked when absent. */
  issuer?: string
  /** Node keys; when set, signatures are fully verified, otherwise only well-formedness. */
  nodeCredentials?: readonly NodeCredential[]
  /** Lifetime of issued credentials when the association sets none. Default 21600 (6 h). */
  credentialDurationSeconds?: number
  faults?: Partial<Faults>
  /** Epoch ms. Default Date.now. */
  now?: () => number
}

export interface MockStats {
  /** API requests (admin endpoints excluded). */
  requests: number
  /** `success` or the error code, e.g. `ThrottlingException`; `SocketDestroyed` for `down`. */
  byOutcome: Record<string, number>
  /** Distinct SigV4 access key ids, in the order first seen. */
  accessKeyIds: string[]
}

interface IndexedAssociation {
  association: Association
  associationId: string
  partition: string
  accountId: string
  roleName: string
  roleId: string
}

type ErrorName = EksAuthErrorCode | AwsAuthErrorCode | 'UnknownOperationException'

/** An answer other than 200; its status is the one EKS Auth (or AWS's authentication) gives. */
class ApiError extends Error {
  readonly status: number
  readonly code: ErrorName
  constructor(code: ErrorName, message: string) {
    super(message)
    this.code = code
    this.status =
      code in EKS_AUTH_ERRORS
        ? EKS_AUTH_ERRORS[code as EksAuthErrorCode].status
        : code === 'UnknownOperationException'
          ? 404
          : 403
  }
}

const API_PATH = /^\/clusters\/([^/]*)\/assume-role-for-pod-identity$/
const TOKEN_PATTERN = /^[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+\.[A-Za-z0-9_=-]+$/
const ERROR_TYPE_SUFFIX = ':http://internal.amazon.com/coral/com.amazonaws.eksauth/'
const MAX_BODY_BYTES = 64 * 1024
const VERIFIED_CACHE_SIZE = 10_000
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/**
 * Validate a partial Faults object (from options or the admin endpoint).
 * @throws TypeError naming the field and what is allowed.
 */
export function validateFaults(input: unknown): Partial<Faults> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new TypeError('faults must be a JSON object')
  }
  const out: Partial<Faults> = {}
  for (const [key, v] of Object.entries(input as Record<string, unknown>)) {
    const num = typeof v === 'number' && Number.isFinite(v) ? v : undefined
    switch (key) {
      case 'latencyMs':
      case 'throttleQps':
        if (num === undefined || num < 0) throw new TypeError(`${key} must be a number >= 0`)
        out[key] = num
        break
      case 'errorRate':
        if (num === undefined || num < 0 || num > 1) {
          throw new TypeError('errorRate must be a number from 0 to 1')
        }
        out.errorRate = num
        break
      case 'errorStatus':
        if (v !== 500 && v !== 503) throw new TypeError('errorStatus must be 500 or 503')
        out.errorStatus = v
        break
      case 'down':
        if (typeof v !== 'boolean') throw new TypeError('down must be true or false')
        out.down = v
        break
      default:
        throw new TypeError(
          `unknown fault "${key}"; allowed: latencyMs, throttleQps, errorRate, errorStatus, down`,
        )
    }
  }
  return out
}

/** The mock EKS Auth server. Call start() to listen and stop() to close every connection. */
export class MockEksAuth {
  readonly #host: string
  readonly #port: number
  readonly #clusterName: string | undefined
  readonly #region: string
  readonly #issuer: string | undefined
  readonly #credentialDurationSeconds: number
  readonly #now: () => number
  readonly #jwks: ReturnType<typeof createLocalJWKSet>
  readonly #sigv4: SigV4Checker
  /** Tokens whose signature, audience and issuer passed (oldest first). */
  readonly #verified = new Map<string, JWTPayload>()
  #associations = new Map<string, IndexedAssociation>()
  #faults: Faults
  /** The throttling fault's bucket (rate = burst = throttleQps, full at each change); off at 0. */
  #bucket: TokenBucket | undefined
  #stats = { requests: 0, byOutcome: new Map<string, number>(), accessKeyIds: new Set<string>() }
  #server: Server | undefined
  #url: string | undefined

  constructor(options: MockEksAuthOptions) {
    this.#host = options.host ?? '127.0.0.1'
    this.#port = options.port ?? 0
    this.#clusterName = options.clusterName
    this.#region = options.region ?? 'us-west-2'
    this.#issuer = options.issuer
    this.#credentialDurationSeconds = options.credentialDurationSeconds ?? 21_600
    if (
      !Number.isInteger(this.#credentialDurationSeconds) ||
      this.#credentialDurationSeconds <= 0
    ) {
      throw new TypeError('credentialDurationSeconds must be a positive whole number')
    }
    this.#now = options.now ?? Date.now
    this.#jwks = createLocalJWKSet(options.jwks)
    this.#sigv4 = new SigV4Checker({
      service: 'eks-auth',
      region: this.#region,
      now: this.#now,
      ...(options.nodeCredentials !== undefined ? { credentials: options.nodeCredentials } : {}),
    })
    this.#faults = { ...DEFAULT_FAULTS, ...validateFaults(options.faults ?? {}) }
    this.#bucket = this.#throttleBucket(this.#faults.throttleQps)
    this.setAssociations(options.associations)
  }

  /** Listen; resolves the base URL, e.g. `http://127.0.0.1:41234`. */
  async start(): Promise<string> {
    if (this.#server !== undefined) throw new Error('MockEksAuth is already started')
    const server = createServer((req, res) => this.#onRequest(req, res))
    this.#server = server
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.#port, this.#host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    const { address, port } = server.address() as AddressInfo
    this.#url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`
    return this.#url
  }

  /** Base URL once started. */
  get url(): string | undefined {
    return this.#url
  }

  /** Stop listening and close every connection, idle or not. */
  async stop(): Promise<void> {
    const server = this.#server
    if (server === undefined) return
    this.#server = undefined
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }

  setFaults(partial: Partial<Faults>): Faults {
    const next = validateFaults(partial)
    if (next.throttleQps !== undefined && next.throttleQps !== this.#faults.throttleQps) {
      this.#bucket = this.#throttleBucket(next.throttleQps)
    }
    this.#faults = { ...this.#faults, ...next }
    return { ...this.#faults }
  }

  get faults(): Faults {
    return { ...this.#faults }
  }

  get stats(): MockStats {
    return {
      requests: this.#stats.requests,
      byOutcome: Object.fromEntries(this.#stats.byOutcome),
      accessKeyIds: [...this.#stats.accessKeyIds],
    }
  }

  resetStats(): void {
    this.#stats = { requests: 0, byOutcome: new Map(), accessKeyIds: new Set() }
  }

  /**
   * Replace the associations (validated like a file).
   * @throws AssociationsError on an invalid entry.
   */
  setAssociations(list: readonly Association[]): void {
    const valid = parseAssociations(JSON.stringify({ associations: list }), 'associations')
    const next = new Map<string, IndexedAssociation>()
    for (const a of valid) {
      const arn = parseRoleArn(a.roleArn)
      if (arn === undefined) continue // unreachable: parseAssociations checked it
      next.set(associationKey(a.namespace, a.serviceAccount), {
        association: a,
        associationId: associationIdOf(a),
        partition: arn.partition,
        accountId: arn.accountId,
        roleName: arn.roleName,
        roleId: `AROA${stableBase32(a.roleArn, 17)}`,
      })
    }
    this.#associations = next
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/'
    if (url.startsWith('/_mock/')) {
      this.#admin(req, res, url).catch(() => sendJson(res, 500, { message: 'admin error' }))
      return
    }
    this.#stats.requests++
    if (this.#faults.down) {
      this.#count('SocketDestroyed')
      req.socket.destroy()
      return
    }
    const requestId = randomUUID()
    this.#handle(req, url)
      .then(
        (body) => this.#answer(res, 200, requestId, 'success', body),
        (err: unknown) => {
          if (req.socket.destroyed) {
            this.#count('ClientClosed')
            return
          }
          const e =
            err instanceof ApiError
              ? err
              : new ApiError('InternalServerException', 'An internal error occurred.')
          const body = JSON.stringify({ __type: e.code, message: e.message })
          return this.#answer(res, e.status, requestId, e.code, body)
        },
      )
      .catch(() => res.destroy())
  }

  /** The operation itself; returns the success body or throws ApiError. */
  async #handle(req: IncomingMessage, url: string): Promise<string> {
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const route = API_PATH.exec(path)
    if (route === null || req.method !== 'POST') {
      throw new ApiError(
        'UnknownOperationException',
        `Unknown operation: ${req.method} ${clip(path)}`,
      )
    }
    const body = await readBody(req)

    const auth = await this.#sigv4.check({
      method: 'POST',
      path: url,
      headers: req.headers,
      body: body ?? '',
    })
    const keyId = auth.accessKeyId
    if (keyId !== undefined && !this.#stats.accessKeyIds.has(keyId)) {
      this.#stats.accessKeyIds.add(keyId)
    }
    if (!auth.ok) throw new ApiError(auth.code, auth.message)

    if (this.#bucket?.tryTake() === false) {
      throw new ApiError('ThrottlingException', 'Rate exceeded')
    }
    const { errorRate, errorStatus } = this.#faults
    if (errorRate > 0 && Math.random() < errorRate) {
      throw errorStatus === 500
        ? new ApiError('InternalServerException', 'An internal error occurred. Please try again.')
        : new ApiError(
            'ServiceUnavailableException',
            'Service is unavailable. Please try again later.',
          )
    }

    const cluster = route[1] as string
    if (!isClusterName(cluster)) {
      throw new ApiError(
        'InvalidParameterException',
        `1 validation error detected: Value '${clip(cluster)}' at 'clusterName' failed to satisfy ` +
          `constraint: Member must satisfy regular expression pattern: ^[0-9A-Za-z][A-Za-z0-9\\-_]*$ ` +
          `(1 to 100 characters)`,
      )
    }
    if (this.#clusterName !== undefined && cluster !== this.#clusterName) {
      throw new ApiError('ResourceNotFoundException', `No cluster found for name: ${cluster}.`)
    }

    const token = parseTokenBody(body)
    const claims = await this.#verify(token)
    const subject = subjectOf(claims)
    const found = this.#associations.get(associationKey(subject.namespace, subject.serviceAccount))
    if (found === undefined) {
      throw new ApiError(
        'ResourceNotFoundException',
        `No Pod Identity Association found for cluster ${cluster}, namespace ${subject.namespace} ` +
          `and service account ${subject.serviceAccount}.`,
      )
    }
    return this.#successBody(cluster, subject, found)
  }

  /**
   * Verify signature, audience and issuer once per token (RSA verification through WebCrypto
   * costs about 0.25 ms, and benchmarks present the same tokens again and again); the time
   * claims are checked on every call against the injected clock, as jose does.
   */
  async #verify(token: string): Promise<JWTPayload> {
    const nowMs = this.#now()
    const cached = this.#verified.get(token)
    if (cached !== undefined) {
      const nowS = Math.floor(nowMs / 1000)
      if (typeof cached.exp === 'number' && cached.exp <= nowS) throw expiredToken()
      if (typeof cached.nbf === 'number' && cached.nbf > nowS) {
        throw invalidToken('"nbf" claim timestamp check failed')
      }
      return cached
    }
    let payload: JWTPayload
    try {
      payload = (
        await jwtVerify(token, this.#jwks, {
          audience: POD_IDENTITY_AUDIENCE,
          currentDate: new Date(nowMs),
          ...(this.#issuer !== undefined ? { issuer: this.#issuer } : {}),
        })
      ).payload
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) throw expiredToken()
      throw invalidToken(err instanceof joseErrors.JOSEError ? err.message : 'verification failed')
    }
    if (this.#verified.size >= VERIFIED_CACHE_SIZE) {
      this.#verified.delete(this.#verified.keys().next().value as string)
    }
    this.#verified.set(token, payload)
    return payload
  }

  #successBody(cluster: string, subject: Subject, a: IndexedAssociation): string {
    const nowMs = this.#now()
    const duration = a.association.durationSeconds ?? this.#credentialDurationSeconds
    const sessionName = ['eks', cluster, subject.podName, randomUUID()]
      .filter((s) => s !== undefined && s !== '')
      .join('-')
      .slice(0, 64)
    const rnd = randomBytes(16 + 30 + 300)
    let accessKeyId = 'ASIA'
    for (let i = 0; i < 16; i++) accessKeyId += BASE32[(rnd[i] as number) & 31]
    return JSON.stringify({
      subject: { namespace: subject.namespace, serviceAccount: subject.serviceAccount },
      audience: POD_IDENTITY_AUDIENCE,
      podIdentityAssociation: {
        associationArn:
          `arn:${a.partition}:eks:${this.#region}:${a.accountId}:podidentityassociation/` +
          `${cluster}/${a.associationId}`,
        associationId: a.associationId,
      },
      assumedRoleUser: {
        arn: `arn:${a.partition}:sts::${a.accountId}:assumed-role/${a.roleName}/${sessionName}`,
        assumeRoleId: `${a.roleId}:${sessionName}`,
      },
      credentials: {
        sessionToken: `IQoJb3JpZ2luX2Vj${rnd.subarray(46).toString('base64')}`,
        secretAccessKey: rnd.subarray(16, 46).toString('base64'),
        accessKeyId,
        expiration: Math.floor(nowMs / 1000) + duration,
      },
    })
  }

  #throttleBucket(qps: number): TokenBucket | undefined {
    return qps > 0
      ? new TokenBucket({ clock: { now: this.#now }, ratePerSecond: qps, burst: Math.max(1, qps) })
      : undefined
  }

  async #answer(
    res: ServerResponse,
    status: number,
    requestId: string,
    outcome: string,
    body: string,
  ): Promise<void> {
    const latency = this.#faults.latencyMs
    if (latency > 0) await sleep(latency)
    this.#count(outcome)
    if (res.destroyed) return
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
      'x-amzn-RequestId': requestId,
    }
    if (status !== 200) headers['x-amzn-ErrorType'] = `${outcome}${ERROR_TYPE_SUFFIX}`
    res.writeHead(status, headers)
    res.end(body)
  }

  #count(outcome: string): void {
    this.#stats.byOutcome.set(outcome, (this.#stats.byOutcome.get(outcome) ?? 0) + 1)
  }

  async #admin(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const path = url.split('?')[0]
    const method = req.method ?? 'GET'
    if (path === '/_mock/stats' && method === 'GET') return sendJson(res, 200, this.stats)
    if (path === '/_mock/faults' && method === 'GET') return sendJson(res, 200, this.faults)
    if (path === '/_mock/faults' && method === 'POST') {
      const body = await readBody(req)
      let input: unknown
      try {
        input = JSON.parse(body?.toString('utf8') ?? '')
      } catch {
        return sendJson(res, 400, { message: 'expected a JSON object of faults' })
      }
      try {
        return sendJson(res, 200, this.setFaults(input as Partial<Faults>))
      } catch (err) {
        return sendJson(res, 400, { message: (err as Error).message })
      }
    }
    if (path === '/_mock/reset' && method === 'POST') {
      this.resetStats()
      return sendJson(res, 200, this.stats)
    }
    return sendJson(res, 404, {
      message:
        'unknown admin endpoint; use GET /_mock/stats, GET|POST /_mock/faults, POST /_mock/reset',
    })
  }
}

function expiredToken(): ApiError {
  return new ApiError('ExpiredTokenException', 'The service account token has expired.')
}

function invalidToken(reason: string): ApiError {
  return new ApiError('InvalidTokenException', `The service account token is invalid: ${reason}`)
}

interface Subject {
  namespace: string
  serviceAccount: string
  podName?: string | undefined
}

function subjectOf(claims: JWTPayload): Subject {
  const { namespace, serviceAccount, podName } = kubernetesSubject(claims)
  if (namespace === undefined || serviceAccount === undefined) {
    throw new ApiError(
      'InvalidTokenException',
      'The service account token is invalid: it names no namespace and service account ' +
        '(no "kubernetes.io" claim and "sub" is not system:serviceaccount:NAMESPACE:NAME)',
    )
  }
  return { namespace, serviceAccount, podName }
}

function parseTokenBody(body: Buffer | undefined): string {
  if (body === undefined) {
    throw new ApiError('InvalidRequestException', `Request body exceeds ${MAX_BODY_BYTES} bytes.`)
  }
  if (body.length === 0) {
    throw new ApiError(
      'InvalidRequestException',
      'Request body is empty; expected {"token": "<jwt>"}.',
    )
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    throw new ApiError(
      'InvalidRequestException',
      'Request body is not valid JSON; expected {"token": "<jwt>"}.',
    )
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ApiError(
      'InvalidRequestException',
      'Request body must be a JSON object: {"token": "<jwt>"}.',
    )
  }
  const token = (parsed as { token?: unknown }).token
  const prefix =
    "1 validation error detected: Value at 'token' failed to satisfy constraint: Member must"
  if (token === undefined || token === null) {
    throw new ApiError('InvalidParameterException', `${prefix} not be null`)
  }
  if (typeof token !== 'string')
    throw new ApiError('InvalidParameterException', `${prefix} be a string`)
  if (token.length === 0) {
    throw new ApiError(
      'InvalidParameterException',
      `${prefix} have length greater than or equal to 1`,
    )
  }
  if (!TOKEN_PATTERN.test(token)) {
    throw new ApiError(
      'InvalidParameterException',
      `${prefix} satisfy regular expression pattern: ^[A-Za-z0-9-_=]+\\.[A-Za-z0-9-_=]+\\.[A-Za-z0-9-_=]+$`,
    )
  }
  return token
}

/** The whole body, or undefined when it is over MAX_BODY_BYTES. Rejects when the client goes away. */
function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    req.on('data', (chunk: Buffer) => {
      if (over) return
      size += chunk.length
      if (size > MAX_BODY_BYTES) over = true
      else chunks.push(chunk)
    })
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks, size)))
    req.on('error', reject)
    req.on('close', () => reject(new Error('client closed the connection')))
  })
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
  })
  res.end(body)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}...` : s
}

/** Uppercase base32 characters derived from a name (stable role ids). */
function stableBase32(name: string, length: number): string {
  const digest = createHash('sha256').update(name).digest()
  let out = ''
  for (let i = 0; i < length; i++) out += BASE32[(digest[i] as number) & 31]
  return out
}
