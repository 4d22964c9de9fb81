// botocore as the independent SigV4 implementation. Both the agent (src/upstream/eks-auth-client.ts)
// and the mock's verifier (src/mock/sigv4-check.ts) sign with @smithy/signature-v4, so agreeing
// with each other proves little. Here (1) botocore's real eks-auth client calls the mock, which
// checks the mock's verifier against botocore's signer, and (2) botocore.auth.SigV4Auth re-signs
// exactly what the agent sent, at the agent's instant, and must compute the same Authorization.

import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingHttpHeaders, Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { associationIdOf } from '../../src/associations/associations.js'
import { MockEksAuth } from '../../src/mock/mock-eks-auth.js'
import { TokenIssuer } from '../../src/mock/token-issuer.js'
import { staticNodeCredentials } from '../../src/node-credentials/default-chain.js'
import type { NodeCredentials } from '../../src/node-credentials/types.js'
import { parseToken } from '../../src/token/parse-token.js'
import { EksAuthClient } from '../../src/upstream/eks-auth-client.js'
import type { Clock } from '../../src/util/clock.js'
import { ManualClock, systemClock } from '../../src/util/clock.js'
import { DEFAULT_ASSOCIATIONS, NODE_KEY } from '../helpers/harness.js'
import { runPythonJson } from '../helpers/python.js'
import { stubNoProxy } from '../helpers/no-proxy.js'

const SCRIPT = fileURLToPath(new URL('../helpers/botocore_sigv4.py', import.meta.url))
const REGION = 'us-west-2'
const CLUSTER = 'test-cluster'
/** Keeps a developer's ~/.aws files and AWS_* variables out of botocore's configuration. */
const PY_ENV = { AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null' }

interface AuthParts {
  credential: string
  signed_headers: string[]
  signature: string
}

interface CallResult {
  ok: boolean
  error?: string
  code?: string
  message?: string
  status?: number
  access_key_id?: string
  secret_len?: number
  session_token_len?: number
  expiration_type?: string
  expiration_utc_offset_s?: number | null
  expiration_epoch?: number
  assumed_role_arn?: string
  assume_role_id?: string
  association_id?: string
  association_arn?: string
  subject?: { namespace: string; serviceAccount: string }
  audience?: string
  sent?: {
    method: string
    url: string
    authorization: string
    authorization_parts: AuthParts
    has_security_token: boolean
  }
}

interface SignResult {
  ok: boolean
  error?: string
  message?: string
  clock_reads: number
  authorization: string
  authorization_parts: AuthParts
  x_amz_date: string
  has_security_token: boolean
  canonical_request: string
  string_to_sign: string
  host_from_url: string
  payload_sha256: string
}

interface BotocoreCall {
  endpointUrl: string
  credentials: NodeCredentials
  token: string
  clusterName?: string
}

/** botocore's own eks-auth client: assume_role_for_pod_identity(clusterName, token). */
function botocoreCall(c: BotocoreCall): Promise<CallResult> {
  return runPythonJson<CallResult>(SCRIPT, {
    env: PY_ENV,
    input: JSON.stringify({
      mode: 'call',
      endpoint_url: c.endpointUrl,
      region: REGION,
      access_key: c.credentials.accessKeyId,
      secret_key: c.credentials.secretAccessKey,
      session_token: c.credentials.sessionToken ?? null,
      cluster_name: c.clusterName ?? CLUSTER,
      token: c.token,
    }),
  })
}

// ---------------------------------------------------------------------------------------------
// 1. botocore's eks-auth client against the mock EKS Auth: the mock's verifier vs botocore.

describe("botocore's eks-auth client against the mock EKS Auth (full signature checks)", () => {
  let mock: MockEksAuth
  let url: string
  let token: string
  const association = DEFAULT_ASSOCIATIONS[0]!

  beforeAll(async () => {
    const issuer = await TokenIssuer.generate()
    mock = new MockEksAuth({
      clusterName: CLUSTER,
      region: REGION,
      associations: DEFAULT_ASSOCIATIONS,
      jwks: issuer.publicJwks(),
      // Known node keys: every signature is recomputed and compared, unknown keys refused.
      nodeCredentials: [
        { accessKeyId: NODE_KEY.accessKeyId, secretAccessKey: NODE_KEY.secretAccessKey },
      ],
    })
    url = await mock.start()
    token = await issuer.mint({
      namespace: association.namespace,
      serviceAccount: association.serviceAccount,
      podName: 'boto-pod',
    })
  })
  afterAll(async () => {
    await mock.stop()
  })
  beforeEach(() => {
    mock.resetStats()
  })

  it.each([
    ['with a session token', NODE_KEY],
    [
      'without a session token',
      { accessKeyId: NODE_KEY.accessKeyId, secretAccessKey: NODE_KEY.secretAccessKey },
    ],
  ])('accepts botocore’s signature %s; botocore parses the answer', async (_name, credentials) => {
    const beforeS = Math.floor(Date.now() / 1000)
    const py = await botocoreCall({ endpointUrl: url, credentials, token })
    const afterS = Math.ceil(Date.now() / 1000)

    expect(py, JSON.stringify(py)).toMatchObject({ ok: true, status: 200 })
    expect(mock.stats.byOutcome).toEqual({ success: 1 })
    expect(mock.stats.accessKeyIds).toEqual([NODE_KEY.accessKeyId])

    // What botocore signed: its own choice of headers, scoped to eks-auth in us-west-2.
    const sent = py.sent!
    expect(sent.method).toBe('POST')
    expect(sent.url).toBe(`${url}/clusters/${CLUSTER}/assume-role-for-pod-identity`)
    expect(sent.authorization_parts.credential).toMatch(
      new RegExp(`^${NODE_KEY.accessKeyId}/\\d{8}/${REGION}/eks-auth/aws4_request$`),
    )
    expect(sent.authorization_parts.signed_headers).toEqual(
      expect.arrayContaining(['content-type', 'host', 'x-amz-date']),
    )
    const withToken = 'sessionToken' in credentials
    expect(sent.has_security_token).toBe(withToken)
    expect(sent.authorization_parts.signed_headers.includes('x-amz-security-token')).toBe(withToken)

    // Fields botocore parsed from the mock's restJson1 answer with the eks-auth service model.
    expect(py.access_key_id).toMatch(/^ASIA[A-Z2-7]{16}$/)
    expect(py.secret_len).toBeGreaterThan(0)
    expect(py.session_token_len).toBeGreaterThan(0)
    expect(py.expiration_type).toBe('datetime.datetime')
    expect(py.expiration_utc_offset_s).toBe(0)
    // The mock's default lifetime (6 h) from the moment it answered.
    expect(py.expiration_epoch).toBeGreaterThanOrEqual(beforeS + 21_600)
    expect(py.expiration_epoch).toBeLessThanOrEqual(afterS + 21_600)
    expect(py.assumed_role_arn).toMatch(
      new RegExp(`^arn:aws:sts::111122223333:assumed-role/App/eks-${CLUSTER}-boto-pod-[0-9a-f-]+$`),
    )
    expect(py.association_id).toBe(associationIdOf(association))
    expect(py.association_arn).toBe(
      `arn:aws:eks:${REGION}:111122223333:podidentityassociation/${CLUSTER}/${associationIdOf(association)}`,
    )
    expect(py.subject).toEqual({ namespace: 'default', serviceAccount: 'app' })
    expect(py.audience).toBe('pods.eks.amazonaws.com')
  })

  it('refuses botocore’s signature made with a wrong secret key: InvalidSignatureException', async () => {
    const py = await botocoreCall({
      endpointUrl: url,
      credentials: { ...NODE_KEY, secretAccessKey: `${NODE_KEY.secretAccessKey}x` },
      token,
    })
    expect(py).toMatchObject({ ok: false, error: 'ClientError' })
    expect(py.code).toBe('InvalidSignatureException')
    expect(py.status).toBe(403)
    expect(py.message).toContain('The request signature we calculated does not match')
    expect(mock.stats.byOutcome).toEqual({ InvalidSignatureException: 1 })
  })

  it('refuses an unknown access key: UnrecognizedClientException', async () => {
    const py = await botocoreCall({
      endpointUrl: url,
      credentials: { ...NODE_KEY, accessKeyId: 'AKIAUNKNOWNNODE00001' },
      token,
    })
    expect(py).toMatchObject({ ok: false, error: 'ClientError' })
    expect(py.code).toBe('UnrecognizedClientException')
    expect(py.status).toBe(403)
    expect(mock.stats.byOutcome).toEqual({ UnrecognizedClientException: 1 })
  })
})

// ---------------------------------------------------------------------------------------------
// 2. The agent's signature against botocore.auth.SigV4Auth's, over the very same request.

/** AWS's documented example key pair (SigV4 test suite), plus a session token. */
const SIGNING_KEY: NodeCredentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW',
}
const NO_TOKEN_KEY: NodeCredentials = {
  accessKeyId: SIGNING_KEY.accessKeyId,
  secretAccessKey: SIGNING_KEY.secretAccessKey,
}

/** A well-formed success body, so the agent's fetch completes. */
const SUCCESS = {
  subject: { namespace: 'default', serviceAccount: 'app' },
  audience: 'pods.eks.amazonaws.com',
  podIdentityAssociation: {
    associationArn: `arn:aws:eks:${REGION}:111122223333:podidentityassociation/${CLUSTER}/a-abc`,
    associationId: 'a-abc',
  },
  assumedRoleUser: {
    arn: 'arn:aws:sts::111122223333:assumed-role/App/eks-session',
    assumeRoleId: 'AROAEXAMPLE:eks-session',
  },
  credentials: {
    sessionToken: 'POD-SESSION',
    secretAccessKey: 'POD-SECRET',
    accessKeyId: 'ASIAPOD',
    expiration: 1_893_456_000,
  },
}

interface Captured {
  method: string
  /** The request target as received: path (and query, none here). */
  url: string
  headers: IncomingHttpHeaders
  body: Buffer
}

/** Headers SigV4Auth sets itself from the pinned time and the credentials. */
const SIGNER_SET = new Set(['authorization', 'x-amz-date', 'x-amz-security-token'])

describe("the agent's EKS Auth signature against botocore.auth.SigV4Auth", () => {
  let server: Server
  let base: string
  const calls: Captured[] = []

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        calls.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          body: Buffer.concat(chunks),
        })
        const text = JSON.stringify(SUCCESS)
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
          'x-amzn-requestid': 'capture',
        })
        res.end(text)
      })
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  })
  beforeEach(() => {
    calls.length = 0
    // The client's default dispatcher honours proxy variables: none between it and loopback.
    stubNoProxy()
  })
  afterEach(() => {
    vi.unstubAllEnvs()
  })

  /** One fetch through the agent's own EKS Auth client; what reached the wire. */
  async function agentRequest(endpoint: string, credentials: NodeCredentials, clock: Clock) {
    const issuer = await TokenIssuer.generate('ES256')
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    const client = new EksAuthClient({
      clusterName: CLUSTER,
      region: REGION,
      endpoint,
      credentials: staticNodeCredentials(credentials),
      clock,
      maxAttempts: 1,
    })
    try {
      const answer = await client.fetch({ token, claims: parseToken(token) })
      expect(answer).toBeDefined()
    } finally {
      await client.close()
    }
    expect(calls).toHaveLength(1)
    return { token, sent: calls[0]! }
  }

  /** botocore re-signs `sent` at its x-amz-date with `credentials`, over the agent's signed headers. */
  async function botocoreSign(sent: Captured, credentials: NodeCredentials) {
    const agentAuth = String(sent.headers.authorization)
    const signedHeaders = /SignedHeaders=([^,\s]+)/.exec(agentAuth)?.[1]?.split(';') ?? []
    const headers: Record<string, string> = {}
    for (const name of signedHeaders) {
      // host: left for botocore to derive from the URL, and compared with the agent's below.
      if (SIGNER_SET.has(name) || name === 'host') continue
      headers[name] = String(sent.headers[name])
    }
    const py = await runPythonJson<SignResult>(SCRIPT, {
      env: PY_ENV,
      input: JSON.stringify({
        mode: 'sign',
        method: sent.method,
        url: `${base}${sent.url}`,
        headers,
        body_b64: sent.body.toString('base64'),
        service: 'eks-auth',
        region: REGION,
        access_key: credentials.accessKeyId,
        secret_key: credentials.secretAccessKey,
        session_token: credentials.sessionToken ?? null,
        amz_date: String(sent.headers['x-amz-date']),
      }),
    })
    expect(py, JSON.stringify(py)).toMatchObject({ ok: true })
    return { py, signedHeaders }
  }

  const cases: Array<{
    name: string
    prefix: string
    credentials: NodeCredentials
    clock: () => Clock
    amzDate?: string
  }> = [
    {
      name: 'with a session token (manual clock, a second before midnight)',
      prefix: '',
      credentials: SIGNING_KEY,
      clock: () => new ManualClock(Date.UTC(2026, 1, 28, 23, 59, 59, 999)),
      amzDate: '20260228T235959Z',
    },
    {
      name: 'without a session token (system clock)',
      prefix: '',
      credentials: NO_TOKEN_KEY,
      clock: () => systemClock,
    },
    {
      name: 'with a session token and an endpoint path prefix',
      prefix: '/proxy/eks-auth',
      credentials: SIGNING_KEY,
      clock: () => new ManualClock(Date.UTC(2026, 0, 1, 12, 0, 0)),
      amzDate: '20260101T120000Z',
    },
    {
      name: 'without a session token and a prefix needing percent-encoding (and a trailing /)',
      prefix: '/a%20b/c(d)~e!/',
      credentials: NO_TOKEN_KEY,
      clock: () => new ManualClock(Date.UTC(2025, 11, 31, 23, 0, 0)),
      amzDate: '20251231T230000Z',
    },
  ]

  it.each(cases)('botocore computes the same Authorization $name', async (c) => {
    const { token, sent } = await agentRequest(`${base}${c.prefix}`, c.credentials, c.clock())
    const path = `${c.prefix.replace(/\/+$/, '')}/clusters/${CLUSTER}/assume-role-for-pod-identity`

    // What the agent put on the wire (protocol.md 1.2, 1.7, 1.8).
    expect(sent.method).toBe('POST')
    expect(sent.url).toBe(path)
    expect(sent.body.toString('utf8')).toBe(JSON.stringify({ token }))
    expect(sent.headers['content-type']).toBe('application/json')
    expect(sent.headers['content-length']).toBe(String(sent.body.length))
    const amzDate = String(sent.headers['x-amz-date'])
    if (c.amzDate !== undefined) expect(amzDate).toBe(c.amzDate)
    expect(amzDate).toMatch(/^\d{8}T\d{6}Z$/)
    expect(sent.headers['x-amz-security-token']).toBe(c.credentials.sessionToken)

    const { py, signedHeaders } = await botocoreSign(sent, c.credentials)

    // The pin held: botocore read its clock once, and signed at the agent's instant.
    expect(py.clock_reads).toBe(1)
    expect(py.x_amz_date).toBe(amzDate)
    expect(py.has_security_token).toBe(c.credentials.sessionToken !== undefined)
    // The agent's host header is what botocore derives from the URL.
    expect(py.host_from_url).toBe(sent.headers.host)
    // The agent's payload hash is the body's (node's hash and botocore's own).
    const bodySha = createHash('sha256').update(sent.body).digest('hex')
    expect(py.payload_sha256).toBe(bodySha)
    if (signedHeaders.includes('x-amz-content-sha256')) {
      expect(sent.headers['x-amz-content-sha256']).toBe(bodySha)
    }

    // Same scope, same signed headers, same signature: the whole header, piece by piece first.
    const agentAuth = String(sent.headers.authorization)
    const agent = {
      credential: /Credential=([^,\s]+)/.exec(agentAuth)?.[1],
      signed_headers: signedHeaders,
      signature: /Signature=([0-9a-f]+)/.exec(agentAuth)?.[1],
    }
    expect(agent.credential).toBe(
      `${c.credentials.accessKeyId}/${amzDate.slice(0, 8)}/${REGION}/eks-auth/aws4_request`,
    )
    expect(py.authorization_parts.credential).toBe(agent.credential)
    expect(py.authorization_parts.signed_headers).toEqual(agent.signed_headers)
    expect(py.authorization_parts.signature, py.canonical_request).toBe(agent.signature)
    expect(py.authorization).toBe(agentAuth)
  })

  it("botocore's client puts the operation path after an endpoint path prefix as the agent does", async () => {
    for (const prefix of ['/proxy/eks-auth', '/a%20b/c(d)~e!/']) {
      calls.length = 0
      const { token, sent } = await agentRequest(`${base}${prefix}`, SIGNING_KEY, systemClock)
      calls.length = 0
      const py = await botocoreCall({
        endpointUrl: `${base}${prefix}`,
        credentials: SIGNING_KEY,
        token,
      })
      expect(py, JSON.stringify(py)).toMatchObject({ ok: true, access_key_id: 'ASIAPOD' })
      expect(calls).toHaveLength(1)
      expect(calls[0]!.url).toBe(sent.url)
      // botocore's json.dumps puts a space after ':'; the content is what counts.
      expect(JSON.parse(calls[0]!.body.toString('utf8'))).toEqual(
        JSON.parse(sent.body.toString('utf8')),
      )
    }
  })
})
