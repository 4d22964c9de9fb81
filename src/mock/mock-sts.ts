// A local STS `AssumeRoleWithWebIdentity` endpoint with the real Query/XML wire format that
// @aws-sdk/client-sts parses (protocol.md 4): a form-encoded POST, an XML answer or an
// <ErrorResponse>. It verifies the token against a JWKS (audience pods.eks.amazonaws.com,
// expiry), and trusts a role only for the namespace and service account its association names
// (the associations list doubles as the roles' trust policies). Faults and admin endpoints as
// every mock upstream has them (mock-upstream.ts).

import { createHash, randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { JSONWebKeySet } from 'jose'
import type { Association } from '../associations/associations.js'
import { associationKey, parseAssociations, parseRoleArn } from '../associations/associations.js'
import { kubernetesSubject } from '../token/parse-token.js'
import { STS_ERRORS } from '../upstream/error-codes.js'
import type { StsErrorCode } from '../upstream/error-codes.js'
import { fakeCredentials, stableBase32 } from './fake-credentials.js'
import type { MockUpstreamOptions } from './mock-upstream.js'
import { MockUpstream, clip, readBody } from './mock-upstream.js'
import { POD_IDENTITY_AUDIENCE } from './token-issuer.js'
import { TokenRefused, TokenVerifier } from './token-verifier.js'

export interface MockStsOptions extends MockUpstreamOptions {
  /** Each pod identity's role: a role is assumable only by the pairs that name it. */
  associations: readonly Association[]
  /** Public keys tokens must be signed with. */
  jwks: JSONWebKeySet
  /** Required `iss` of tokens (and the answer's Provider); not checked when absent. */
  issuer?: string | undefined
}

/** An error answer: STS's wire code, its wire status, and a message. */
class StsFault extends Error {
  readonly code: StsErrorCode | 'InvalidAction'
  readonly status: number
  constructor(code: StsErrorCode | 'InvalidAction', message: string) {
    super(message)
    this.code = code
    this.status = code in STS_ERRORS ? STS_ERRORS[code as StsErrorCode].wire : 400
  }
}

const MAX_BODY_BYTES = 64 * 1024
const XMLNS = 'https://sts.amazonaws.com/doc/2011-06-15/'
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/

function xml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** The mock STS server. Call start() to listen and stop() to close every connection. */
export class MockSts extends MockUpstream {
  readonly #tokens: TokenVerifier
  readonly #issuer: string | undefined
  #associations = new Map<string, Association>()

  constructor(options: MockStsOptions) {
    super(options)
    this.#issuer = options.issuer
    this.#tokens = new TokenVerifier({ jwks: options.jwks, issuer: options.issuer, now: this.now })
    this.setAssociations(options.associations)
  }

  /**
   * Replace the associations (validated like a file).
   * @throws AssociationsError on an invalid entry.
   */
  setAssociations(list: readonly Association[]): void {
    const valid = parseAssociations(JSON.stringify({ associations: list }), 'associations')
    this.#associations = new Map(
      valid.map((a) => [associationKey(a.namespace, a.serviceAccount), a]),
    )
  }

  protected serve(req: IncomingMessage, res: ServerResponse, url: string): void {
    const requestId = randomUUID()
    const headers = { 'Content-Type': 'text/xml', 'x-amzn-RequestId': requestId }
    this.settle(req, res, this.#handle(req, url, requestId), {
      ok: (body) => ({ status: 200, outcome: 'success', headers, body }),
      failed: (err) => {
        const e =
          err instanceof StsFault
            ? err
            : new StsFault('InternalFailure', 'An internal error occurred.')
        const type = e.status >= 500 ? 'Receiver' : 'Sender'
        const body =
          `<ErrorResponse xmlns="${XMLNS}"><Error><Type>${type}</Type><Code>${e.code}</Code>` +
          `<Message>${xml(e.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`
        return { status: e.status, outcome: e.code, headers, body }
      },
    })
  }

  async #handle(req: IncomingMessage, url: string, requestId: string): Promise<string> {
    if (req.method !== 'POST' || url.split('?')[0] !== '/') {
      throw new StsFault('InvalidAction', `Could not find operation for ${req.method} ${clip(url)}`)
    }
    const body = await readBody(req, MAX_BODY_BYTES)
    if (body === undefined) throw new StsFault('ValidationError', 'Request body too large')
    const form = new URLSearchParams(body.toString('utf8'))
    if (
      form.get('Action') !== 'AssumeRoleWithWebIdentity' ||
      form.get('Version') !== '2011-06-15'
    ) {
      throw new StsFault(
        'InvalidAction',
        `Could not find operation ${clip(form.get('Action') ?? '')} for version ${clip(form.get('Version') ?? '')}`,
      )
    }
    if (this.throttled()) throw new StsFault('Throttling', 'Rate exceeded')
    const injected = this.injectedError()
    if (injected !== undefined) {
      throw injected === 500
        ? new StsFault('InternalFailure', 'An internal error occurred.')
        : new StsFault('ServiceUnavailable', 'Service is unavailable.')
    }
    const roleArn = form.get('RoleArn') ?? ''
    const role = parseRoleArn(roleArn)
    if (role === undefined) {
      throw new StsFault(
        'ValidationError',
        `Value '${clip(roleArn)}' at 'roleArn' failed to satisfy constraint: an IAM role ARN`,
      )
    }
    const sessionName = form.get('RoleSessionName') ?? ''
    if (!SESSION_NAME.test(sessionName)) {
      throw new StsFault(
        'ValidationError',
        `Value '${clip(sessionName)}' at 'roleSessionName' failed to satisfy constraint: Member must have length 2-64 and match [\\w+=,.@-]*`,
      )
    }
    const durationText = form.get('DurationSeconds') ?? '3600'
    const duration = Number(durationText)
    if (!Number.isInteger(duration) || duration < 900 || duration > 43_200) {
      throw new StsFault(
        'ValidationError',
        `Value '${clip(durationText)}' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200`,
      )
    }
    const token = form.get('WebIdentityToken') ?? ''
    let claims
    try {
      claims = await this.#tokens.verify(token)
    } catch (err) {
      if (!(err instanceof TokenRefused)) throw err
      throw err.kind === 'expired'
        ? new StsFault(
            'ExpiredTokenException',
            'Token expired: current date/time is after the token expiration',
          )
        : new StsFault('InvalidIdentityToken', `The web identity token is invalid: ${err.message}`)
    }
    const { namespace, serviceAccount } = kubernetesSubject(claims)
    const trusted =
      namespace !== undefined &&
      serviceAccount !== undefined &&
      this.#associations.get(associationKey(namespace, serviceAccount))?.roleArn === roleArn
    if (!trusted)
      throw new StsFault('AccessDenied', 'Not authorized to perform sts:AssumeRoleWithWebIdentity')

    const creds = fakeCredentials()
    const expiration = new Date(this.now() + duration * 1000)
      .toISOString()
      .replace(/\.\d{3}Z$/, 'Z')
    const roleId = `AROA${stableBase32(createHash('sha256').update(roleArn).digest(), 17)}`
    const arn = `arn:${role.partition}:sts::${role.accountId}:assumed-role/${role.roleName}/${sessionName}`
    return (
      `<AssumeRoleWithWebIdentityResponse xmlns="${XMLNS}"><AssumeRoleWithWebIdentityResult>` +
      `<SubjectFromWebIdentityToken>${xml(String(claims.sub ?? ''))}</SubjectFromWebIdentityToken>` +
      `<Audience>${POD_IDENTITY_AUDIENCE}</Audience>` +
      `<AssumedRoleUser><Arn>${xml(arn)}</Arn><AssumedRoleId>${roleId}:${xml(sessionName)}</AssumedRoleId></AssumedRoleUser>` +
      `<Credentials><AccessKeyId>${creds.accessKeyId}</AccessKeyId><SecretAccessKey>${xml(creds.secretAccessKey)}</SecretAccessKey>` +
      `<SessionToken>${xml(creds.sessionToken)}</SessionToken><Expiration>${expiration}</Expiration></Credentials>` +
      `<Provider>${xml(this.#issuer ?? String(claims.iss ?? 'https://oidc.mock.local'))}</Provider>` +
      `</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata>` +
      `</AssumeRoleWithWebIdentityResponse>`
    )
  }
}
