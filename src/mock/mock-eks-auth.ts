// A local EKS Auth `AssumeRoleForPodIdentity` endpoint with the real restJson1 wire format:
// SigV4 checks, token signatures verified against a JWKS, associations from a list; faults and
// admin endpoints as every mock upstream has them (mock-upstream.ts). Over 250 lines on purpose:
// routing, validation and the restJson1 answers are one wire contract, easier to check against
// protocol.md in one file.

import { createHash, randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { JSONWebKeySet, JWTPayload } from 'jose'
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
import type { Answer, MockUpstreamOptions } from './mock-upstream.js'
import { fakeCredentials, stableBase32 } from './fake-credentials.js'
import { MockUpstream, clip, readBody } from './mock-upstream.js'
import { SigV4Checker, type NodeCredential } from './sigv4-check.js'
import { POD_IDENTITY_AUDIENCE } from './token-issuer.js'
import { TokenRefused, TokenVerifier } from './token-verifier.js'

export type { Faults, MockStats } from './mock-upstream.js'
export { DEFAULT_FAULTS, validateFaults } from './mock-upstream.js'

export interface MockEksAuthOptions extends MockUpstreamOptions {
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

/** The mock EKS Auth server. Call start() to listen and stop() to close every connection. */
export class MockEksAuth extends MockUpstream {
  readonly #clusterName: string | undefined
  readonly #region: string
  readonly #credentialDurationSeconds: number
  readonly #tokens: TokenVerifier
  readonly #sigv4: SigV4Checker
  #associations = new Map<string, IndexedAssociation>()
  /** UIDs of pods deleted since their tokens were issued: the API server no longer accepts them. */
  readonly #deletedPods = new Set<string>()

  constructor(options: MockEksAuthOptions) {
    super(options)
    this.#clusterName = options.clusterName
    this.#region = options.region ?? 'us-west-2'
    this.#credentialDurationSeconds = options.credentialDurationSeconds ?? 21_600
    if (
      !Number.isInteger(this.#credentialDurationSeconds) ||
      this.#credentialDurationSeconds <= 0
    ) {
      throw new TypeError('credentialDurationSeconds must be a positive whole number')
    }
    this.#tokens = new TokenVerifier({ jwks: options.jwks, issuer: options.issuer, now: this.now })
    this.#sigv4 = new SigV4Checker({
      service: 'eks-auth',
      region: this.#region,
      now: this.now,
      ...(options.nodeCredentials !== undefined ? { credentials: options.nodeCredentials } : {}),
    })
    this.setAssociations(options.associations)
  }

  /** The pod with this UID is deleted: its tokens are refused from now on, as EKS Auth does. */
  deletePod(podUid: string): void {
    this.#deletedPods.add(podUid)
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
        roleId: `AROA${stableBase32(createHash('sha256').update(a.roleArn).digest(), 17)}`,
      })
    }
    this.#associations = next
  }

  protected serve(req: IncomingMessage, res: ServerResponse, url: string): void {
    const requestId = randomUUID()
    this.settle(req, res, this.#handle(req, url), {
      ok: (body) => restJson(200, requestId, 'success', body),
      failed: (err) => {
        const e =
          err instanceof ApiError
            ? err
            : new ApiError('InternalServerException', 'An internal error occurred.')
        return restJson(
          e.status,
          requestId,
          e.code,
          JSON.stringify({ __type: e.code, message: e.message }),
        )
      },
    })
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
    const body = await readBody(req, MAX_BODY_BYTES)

    const auth = await this.#sigv4.check({
      method: 'POST',
      path: url,
      headers: req.headers,
      body: body ?? '',
    })
    if (auth.accessKeyId !== undefined) this.sawAccessKeyId(auth.accessKeyId)
    if (!auth.ok) throw new ApiError(auth.code, auth.message)

    if (this.throttled()) throw new ApiError('ThrottlingException', 'Rate exceeded')
    const errorStatus = this.injectedError()
    if (errorStatus !== undefined) {
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
    if (subject.podUid !== undefined && this.#deletedPods.has(subject.podUid)) {
      throw invalidToken(`the pod ${subject.podUid} it is bound to no longer exists`)
    }
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

  async #verify(token: string): Promise<JWTPayload> {
    try {
      return await this.#tokens.verify(token)
    } catch (err) {
      if (!(err instanceof TokenRefused)) throw err
      throw err.kind === 'expired' ? expiredToken() : invalidToken(err.message)
    }
  }

  #successBody(cluster: string, subject: Subject, a: IndexedAssociation): string {
    const nowMs = this.now()
    const duration = a.association.durationSeconds ?? this.#credentialDurationSeconds
    const sessionName = ['eks', cluster, subject.podName, randomUUID()]
      .filter((s) => s !== undefined && s !== '')
      .join('-')
      .slice(0, 64)
    const creds = fakeCredentials()
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
        sessionToken: creds.sessionToken,
        secretAccessKey: creds.secretAccessKey,
        accessKeyId: creds.accessKeyId,
        expiration: Math.floor(nowMs / 1000) + duration,
      },
    })
  }
}

/** A restJson1 answer: JSON, the request id, and on an error the type header AWS sends. */
function restJson(status: number, requestId: string, outcome: string, body: string): Answer {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    'x-amzn-RequestId': requestId,
  }
  if (status !== 200) headers['x-amzn-ErrorType'] = `${outcome}${ERROR_TYPE_SUFFIX}`
  return { status, outcome, headers, body }
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
  podUid?: string | undefined
}

function subjectOf(claims: JWTPayload): Subject {
  const { namespace, serviceAccount, podName, podUid } = kubernetesSubject(claims)
  if (namespace === undefined || serviceAccount === undefined) {
    throw new ApiError(
      'InvalidTokenException',
      'The service account token is invalid: it names no namespace and service account ' +
        '(no "kubernetes.io" claim and "sub" is not system:serviceaccount:NAMESPACE:NAME)',
    )
  }
  return { namespace, serviceAccount, podName, podUid }
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
