import { createHash } from 'node:crypto'
import * as http from 'node:http'
import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type * as net from 'node:net'
import type { AddressInfo } from 'node:net'
import { Hash } from '@smithy/hash-node'
import { SignatureV4 } from '@smithy/signature-v4'
import { Agent } from 'undici'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  AgentError,
  InvalidUpstreamResponseError,
  NodeCredentialsError,
  UpstreamError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
} from '../../../src/errors.js'
import {
  createDefaultNodeCredentialsProvider,
  staticNodeCredentials,
} from '../../../src/node-credentials/default-chain.js'
import type { NodeCredentials } from '../../../src/node-credentials/types.js'
import { parseToken } from '../../../src/token/parse-token.js'
import type { CheckedToken } from '../../../src/token/validity.js'
import {
  EksAuthClient,
  type EksAuthAttempt,
  type EksAuthClientOptions,
} from '../../../src/upstream/eks-auth-client.js'
import { systemClock } from '../../../src/util/clock.js'
import { startConnectProxy } from '../../helpers/connect-proxy.js'
import { stubNoProxy } from '../../helpers/no-proxy.js'

const TOKEN =
  'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpteS1zYSJ9.c2ln'
/** The checked request a source receives for TOKEN. */
const REQUEST: CheckedToken = { token: TOKEN, claims: parseToken(TOKEN) }
const NODE_CREDS: NodeCredentials = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'NODE/SECRET/KEY/wJalrXUtnFEMI',
  sessionToken: 'NODESESSIONTOKEN',
}
const POD_SECRET = 'POD/SECRET/wJalrXUtnFEMIK7MDENG'

const SUCCESS = {
  subject: { namespace: 'default', serviceAccount: 'my-sa' },
  audience: 'pods.eks.amazonaws.com',
  podIdentityAssociation: {
    associationArn: 'arn:aws:eks:us-west-2:111122223333:podidentityassociation/my-cluster/a-abc',
    associationId: 'a-abc',
  },
  assumedRoleUser: {
    arn: 'arn:aws:sts::111122223333:assumed-role/MyRole/eks-my-cluster-my-pod-uuid',
    assumeRoleId: 'AROAEXAMPLE:eks-my-cluster-my-pod-uuid',
  },
  credentials: {
    sessionToken: 'POD-SESSION',
    secretAccessKey: POD_SECRET,
    accessKeyId: 'ASIAPOD',
    expiration: 1704070800.5,
  },
}

interface Received {
  method: string
  url: string
  headers: IncomingHttpHeaders
  rawHeaderNames: string[]
  body: Buffer
}

type Handler = (req: Received, res: ServerResponse, n: number) => void

interface FakeUpstream {
  url: string
  port: number
  calls: Received[]
  connections: number
  server: http.Server
}

const servers: http.Server[] = []
const clients: EksAuthClient[] = []

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()))
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise<void>((resolve) => {
          s.closeAllConnections()
          s.close(() => resolve())
        }),
    ),
  )
  vi.unstubAllEnvs()
})

beforeEach(() => {
  stubNoProxy()
})

async function listen(server: http.Server | net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

async function startUpstream(handler: Handler): Promise<FakeUpstream> {
  const up: FakeUpstream = {
    url: '',
    port: 0,
    calls: [],
    connections: 0,
    server: undefined as never,
  }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const received: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        rawHeaderNames: req.rawHeaders.filter((_, i) => i % 2 === 0).map((h) => h.toLowerCase()),
        body: Buffer.concat(chunks),
      }
      up.calls.push(received)
      handler(received, res, up.calls.length)
    })
  })
  server.on('connection', () => up.connections++)
  servers.push(server)
  up.server = server
  up.port = await listen(server)
  up.url = `http://127.0.0.1:${up.port}`
  return up
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': `req-${status}`,
    ...headers,
  })
  res.end(text)
}

const ok: Handler = (_req, res) => sendJson(res, 200, SUCCESS)

function awsError(status: number, code: string): Handler {
  return (_req, res) =>
    sendJson(
      res,
      status,
      { __type: code, message: `${code} message` },
      { 'x-amzn-errortype': code },
    )
}

function makeClient(endpoint: string, opts: Partial<EksAuthClientOptions> = {}): EksAuthClient {
  const client = new EksAuthClient({
    clusterName: 'my-cluster',
    region: 'us-west-2',
    endpoint,
    credentials: staticNodeCredentials(NODE_CREDS),
    clock: systemClock,
    random: () => 0.5,
    ...opts,
  })
  clients.push(client)
  return client
}

async function rejection(p: Promise<unknown>): Promise<AgentError> {
  try {
    await p
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError)
    const e = err as AgentError
    for (const secret of [TOKEN, NODE_CREDS.secretAccessKey, NODE_CREDS.sessionToken as string]) {
      expect(e.message).not.toContain(secret)
    }
    return e
  }
  throw new Error('expected a rejection')
}

/** Recomputes the SigV4 signature of a received request, as EKS Auth would. */
async function verifySignature(req: Received, creds: NodeCredentials, body = req.body) {
  const auth = String(req.headers.authorization)
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^,]+), SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
      auth,
    )
  expect(m, auth).not.toBeNull()
  const [, credential, signedHeadersList, signature] = m as RegExpExecArray
  const signedHeaders = (signedHeadersList as string).split(';')
  const headers: Record<string, string> = {}
  for (const name of signedHeaders) headers[name] = String(req.headers[name])
  // As AWS does: the payload hash header must match the body actually received.
  const bodyHash = createHash('sha256').update(body).digest('hex')
  expect(headers['x-amz-content-sha256']).toBeDefined()
  headers['x-amz-content-sha256'] = bodyHash
  const amzDate = String(req.headers['x-amz-date'])
  const d = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate) as RegExpExecArray
  const signingDate = new Date(`${d[1]}-${d[2]}-${d[3]}T${d[4]}:${d[5]}:${d[6]}Z`)
  const verifier = new SignatureV4({
    service: 'eks-auth',
    region: 'us-west-2',
    credentials: creds,
    sha256: Hash.bind(null, 'sha256'),
  })
  const [path, query] = req.url.split('?')
  expect(query).toBeUndefined()
  const resigned = await verifier.sign(
    {
      method: req.method,
      protocol: 'http:',
      hostname: String(req.headers.host).replace(/:\d+$/, ''),
      path: path as string,
      query: {},
      headers,
      body,
    },
    { signingDate },
  )
  const expected = /Signature=([0-9a-f]{64})$/.exec(String(resigned.headers.authorization))?.[1]
  return {
    credential: credential as string,
    signedHeaders,
    signature: signature as string,
    expected,
  }
}

describe('EksAuthClient request and SigV4', () => {
  it('sends the protocol.md 1.2 request, signed so the upstream can verify it', async () => {
    const up = await startUpstream(ok)
    const client = makeClient(up.url)
    const { credentials: creds } = await client.fetch(REQUEST)
    expect(creds.accessKeyId).toBe('ASIAPOD')
    expect(up.calls).toHaveLength(1)
    const req = up.calls[0] as Received

    expect(req.method).toBe('POST')
    expect(req.url).toBe('/clusters/my-cluster/assume-role-for-pod-identity')
    expect(req.headers['content-type']).toBe('application/json')
    expect(req.body.toString()).toBe(JSON.stringify({ token: TOKEN }))
    expect(req.headers['content-length']).toBe(String(req.body.length))
    expect(req.headers.host).toBe(`127.0.0.1:${up.port}`)
    expect(req.headers['x-amz-security-token']).toBe('NODESESSIONTOKEN')
    expect(req.headers['x-amz-content-sha256']).toMatch(/^[0-9a-f]{64}$/)

    expect(req.headers['x-amz-content-sha256']).toBe(
      createHash('sha256').update(req.body).digest('hex'),
    )
    const v = await verifySignature(req, NODE_CREDS)
    expect(v.signature).toBe(v.expected)
    expect(v.signedHeaders).toContain('host')
    expect(v.signedHeaders).toEqual([
      'content-length',
      'content-type',
      'host',
      'x-amz-content-sha256',
      'x-amz-date',
      'x-amz-security-token',
    ])
    expect(v.credential).toMatch(/^AKIDEXAMPLE\/\d{8}\/us-west-2\/eks-auth\/aws4_request$/)
    // Exactly the signed headers plus authorization (and undici's connection management).
    const sent = req.rawHeaderNames.filter((h) => h !== 'connection').sort()
    expect(sent).toEqual([...v.signedHeaders, 'authorization'].sort())

    // The verifier is meaningful: a tampered body gives another signature.
    const tampered = await verifySignature(req, NODE_CREDS, Buffer.from('{"token":"x"}'))
    expect(tampered.expected).not.toBe(v.signature)
  })

  it('omits x-amz-security-token when the node credentials have no session token', async () => {
    const up = await startUpstream(ok)
    const longTerm = { accessKeyId: 'AKIDLONGTERM', secretAccessKey: 'LONG/TERM/SECRET' }
    const client = makeClient(up.url, { credentials: staticNodeCredentials(longTerm) })
    await client.fetch(REQUEST)
    const req = up.calls[0] as Received
    expect(req.headers['x-amz-security-token']).toBeUndefined()
    const v = await verifySignature(req, longTerm)
    expect(v.signature).toBe(v.expected)
    expect(v.signedHeaders).not.toContain('x-amz-security-token')
    expect(v.credential).toMatch(/^AKIDLONGTERM\/\d{8}\/us-west-2\/eks-auth\/aws4_request$/)
  })

  it('keeps a path prefix of the endpoint and signs it', async () => {
    const up = await startUpstream(ok)
    const client = makeClient(`${up.url}/prefix/`)
    await client.fetch(REQUEST)
    const req = up.calls[0] as Received
    expect(req.url).toBe('/prefix/clusters/my-cluster/assume-role-for-pod-identity')
    const v = await verifySignature(req, NODE_CREDS)
    expect(v.signature).toBe(v.expected)
  })

  it('parses the success body into credentials and the association', async () => {
    const up = await startUpstream(ok)
    const answer = await makeClient(up.url).fetch(REQUEST)
    expect(answer).toEqual({
      credentials: {
        accessKeyId: 'ASIAPOD',
        secretAccessKey: POD_SECRET,
        sessionToken: 'POD-SESSION',
        accountId: '111122223333',
        expirationMs: 1704070800500,
        assumedRoleArn: 'arn:aws:sts::111122223333:assumed-role/MyRole/eks-my-cluster-my-pod-uuid',
      },
      association: { id: 'a-abc', namespace: 'default', serviceAccount: 'my-sa' },
      issuedBy: 'eks-auth',
    })
  })

  it('reuses the keep-alive connection', async () => {
    const up = await startUpstream(ok)
    const client = makeClient(up.url)
    for (let i = 0; i < 3; i++) {
      await client.fetch(REQUEST)
      // undici frees the socket just after the body ends; a request sent in the same tick may
      // open a second one. Real calls are never back to back.
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(up.calls).toHaveLength(3)
    expect(up.connections).toBe(1)
  })

  it('honours HTTP_PROXY (CONNECT through the proxy)', async () => {
    const up = await startUpstream(ok)
    const proxy = await startConnectProxy()
    servers.push(proxy.server)
    vi.stubEnv('HTTP_PROXY', `http://127.0.0.1:${proxy.port}`)
    vi.stubEnv('http_proxy', `http://127.0.0.1:${proxy.port}`)
    const { credentials: creds } = await makeClient(up.url).fetch(REQUEST)
    expect(creds.accountId).toBe('111122223333')
    expect(proxy.tunnels()).toBe(1)
    expect(up.calls).toHaveLength(1)
  })

  it('uses an injected dispatcher and leaves it open on close()', async () => {
    const up = await startUpstream(ok)
    const dispatcher = new Agent({ connect: { timeout: 500 } })
    try {
      const client = makeClient(up.url, { dispatcher })
      await client.warmUp()
      await client.fetch(REQUEST)
      await client.close()
      expect(dispatcher.closed).toBe(false)
      expect(up.calls).toHaveLength(1)
    } finally {
      await dispatcher.close()
    }
  })

  it('a throwing onAttempt hook does not change the outcome', async () => {
    const up = await startUpstream(ok)
    const client = makeClient(up.url, {
      onAttempt: () => {
        throw new Error('hook bug')
      },
    })
    expect((await client.fetch(REQUEST)).credentials.accessKeyId).toBe('ASIAPOD')
  })

  it('rejects invalid options at construction', () => {
    const base = {
      region: 'us-west-2',
      endpoint: 'http://127.0.0.1:1',
      credentials: staticNodeCredentials(NODE_CREDS),
      clock: systemClock,
    }
    expect(() => new EksAuthClient({ ...base, clusterName: '' })).toThrow(/cluster name/)
    expect(() => new EksAuthClient({ ...base, clusterName: 'a/b' })).toThrow(/cluster name/)
    expect(() => new EksAuthClient({ ...base, clusterName: 'c', endpoint: 'ftp://x' })).toThrow(
      /http or https/,
    )
    expect(() => new EksAuthClient({ ...base, clusterName: 'c', attemptTimeoutMs: 0 })).toThrow(
      /attemptTimeoutMs/,
    )
  })
})

describe('EksAuthClient errors and retries', () => {
  it('503 then 200 -> success after 2 calls', async () => {
    const up = await startUpstream((req, res, n) =>
      n === 1 ? awsError(503, 'ServiceUnavailableException')(req, res, n) : ok(req, res, n),
    )
    const attempts: EksAuthAttempt[] = []
    const { credentials: creds } = await makeClient(up.url, {
      onAttempt: (a) => attempts.push(a),
    }).fetch(REQUEST)
    expect(creds.accountId).toBe('111122223333')
    expect(up.calls).toHaveLength(2)
    expect(attempts.map((a) => [a.attempt, a.outcome, a.statusCode, a.code])).toEqual([
      [1, 'error', 503, 'ServiceUnavailableException'],
      [2, 'success', 200, undefined],
    ])
    expect(JSON.stringify(attempts)).not.toContain(POD_SECRET)
  })

  it('500 x3 -> UpstreamError 500 after 3 calls', async () => {
    const up = await startUpstream(awsError(500, 'InternalServerException'))
    const err = await rejection(makeClient(up.url).fetch(REQUEST))
    expect(err).toBeInstanceOf(UpstreamError)
    expect(err.statusCode).toBe(500)
    expect(err.code).toBe('InternalServerException')
    expect((err as UpstreamError).requestId).toBe('req-500')
    expect((err as UpstreamError).fault).toBe('server')
    expect(up.calls).toHaveLength(3)
  })

  it('a proxy HTML 502 is retried and never copied', async () => {
    const up = await startUpstream((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' })
      res.end('<html><body>Bad Gateway at internal-proxy-7</body></html>')
    })
    const err = await rejection(makeClient(up.url, { maxAttempts: 2 }).fetch(REQUEST))
    expect(err).toBeInstanceOf(UpstreamError)
    expect(err.statusCode).toBe(502)
    expect(err.code).toBe('UnknownError')
    expect(err.message).toContain('unexpected non-JSON error response (HTTP 502)')
    expect(err.message).not.toContain('internal-proxy-7')
    expect(up.calls).toHaveLength(2)
  })

  it.each([
    [400, 'InvalidTokenException'],
    [400, 'AccessDeniedException'],
    [404, 'ResourceNotFoundException'],
    [429, 'ThrottlingException'],
  ])('%i %s -> exactly 1 call', async (status, code) => {
    const up = await startUpstream(awsError(status, code))
    const err = await rejection(makeClient(up.url).fetch(REQUEST))
    expect(err).toBeInstanceOf(UpstreamError)
    expect(err.statusCode).toBe(status)
    expect(err.code).toBe(code)
    expect(err.message).toBe(`[req-${status}]: (${code}): ${code} message, fault: client`)
    expect(up.calls).toHaveLength(1)
  })

  it('connection refused -> UpstreamUnreachableError (502) after maxAttempts', async () => {
    const s = http.createServer()
    const port = await listen(s)
    await new Promise<void>((resolve) => s.close(() => resolve()))
    const attempts: EksAuthAttempt[] = []
    const err = await rejection(
      makeClient(`http://127.0.0.1:${port}`, {
        onAttempt: (a) => attempts.push(a),
      }).fetch(REQUEST),
    )
    expect(err).toBeInstanceOf(UpstreamUnreachableError)
    expect(err.statusCode).toBe(502)
    expect(err.message).toBe(`unable to reach EKS Auth at 127.0.0.1:${port}: ECONNREFUSED`)
    expect(attempts).toHaveLength(3)
    expect(
      attempts.every((a) => a.code === 'UpstreamUnreachable' && a.statusCode === undefined),
    ).toBe(true)
  })

  it('a reset connection is retried', async () => {
    const up = await startUpstream((req, res, n) => {
      if (n === 1) res.socket?.destroy()
      else ok(req, res, n)
    })
    const { credentials: creds } = await makeClient(up.url).fetch(REQUEST)
    expect(creds.accessKeyId).toBe('ASIAPOD')
    expect(up.calls).toHaveLength(2)
  })

  it('a hanging upstream -> UpstreamTimeoutError (504), attempts bounded by totalTimeoutMs', async () => {
    const up = await startUpstream(() => {})
    const t0 = Date.now()
    const err = await rejection(
      makeClient(up.url, {
        attemptTimeoutMs: 150,
        totalTimeoutMs: 400,
        maxAttempts: 5,
      }).fetch(REQUEST),
    )
    const elapsed = Date.now() - t0
    expect(err).toBeInstanceOf(UpstreamTimeoutError)
    expect(err.statusCode).toBe(504)
    expect(err.message).toBe('EKS Auth did not answer within 150 ms')
    // 0 ms: attempt 1; ~175 ms: attempt 2; ~350 ms + 150 > 400: no attempt 3 (a loaded machine
    // may even skip attempt 2). Never more than totalTimeoutMs / attemptTimeoutMs attempts.
    expect(up.calls.length).toBeGreaterThanOrEqual(1)
    expect(up.calls.length).toBeLessThanOrEqual(Math.floor(400 / 150))
    expect(elapsed).toBeLessThan(400 + 300)
  })

  it('a body that stalls after the headers times out too', async () => {
    const up = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' })
      res.write('{"credentials":')
    })
    const err = await rejection(
      makeClient(up.url, { attemptTimeoutMs: 100, maxAttempts: 1 }).fetch(REQUEST),
    )
    expect(err).toBeInstanceOf(UpstreamTimeoutError)
    expect(up.calls).toHaveLength(1)
  })

  const credentials = SUCCESS.credentials
  it.each([
    [
      'missing credentials',
      JSON.stringify({ ...SUCCESS, credentials: undefined }),
      /credentials is missing/,
    ],
    [
      'expiration as string',
      JSON.stringify({
        ...SUCCESS,
        credentials: { ...credentials, expiration: '2024-01-01T00:00:00Z' },
      }),
      /credentials\.expiration must be a number/,
    ],
    [
      'bad ARN',
      JSON.stringify({ ...SUCCESS, assumedRoleUser: { arn: 'arn:aws:sts::bad:assumed-role/R/s' } }),
      /assumedRoleUser\.arn/,
    ],
    ['non-JSON', '<html>hello</html>', /not JSON/],
    [
      'more than 64 KiB',
      JSON.stringify({ ...SUCCESS, padding: 'x'.repeat(70 * 1024) }),
      /larger than 65536 bytes/,
    ],
  ])(
    'bad 2xx body (%s) -> InvalidUpstreamResponseError after 1 call',
    async (_name, body, message) => {
      const up = await startUpstream((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(body)
      })
      const err = await rejection(makeClient(up.url).fetch(REQUEST))
      expect(err).toBeInstanceOf(InvalidUpstreamResponseError)
      expect(err.statusCode).toBe(502)
      expect(err.message).toMatch(message)
      expect(err.message).not.toContain(POD_SECRET)
      expect(up.calls).toHaveLength(1)
    },
  )

  it('an oversized body streamed without content-length is cut off', async () => {
    const up = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }) // chunked
      const chunk = 'x'.repeat(16 * 1024)
      for (let i = 0; i < 8; i++) res.write(chunk)
      res.end()
    })
    const err = await rejection(makeClient(up.url).fetch(REQUEST))
    expect(err).toBeInstanceOf(InvalidUpstreamResponseError)
    expect(err.message).toMatch(/larger than 65536 bytes/)
    expect(up.calls).toHaveLength(1)
  })

  it('3xx -> InvalidUpstreamResponseError, 1 call', async () => {
    const up = await startUpstream((_req, res) => {
      res.writeHead(301, { location: 'http://elsewhere.example/' })
      res.end('moved')
    })
    const err = await rejection(makeClient(up.url).fetch(REQUEST))
    expect(err).toBeInstanceOf(InvalidUpstreamResponseError)
    expect(err.message).toBe('unexpected redirect (HTTP 301) from EKS Auth')
    expect(up.calls).toHaveLength(1)
  })

  it('node credentials failure -> NodeCredentialsError, no call', async () => {
    const up = await startUpstream(ok)
    const client = makeClient(up.url, {
      credentials: () => Promise.reject(new Error('Could not load credentials from any providers')),
    })
    const err = await rejection(client.fetch(REQUEST))
    expect(err).toBeInstanceOf(NodeCredentialsError)
    expect(err.statusCode).toBe(500)
    expect(err.message).toBe(
      "unable to load the node's AWS credentials: Could not load credentials from any providers",
    )
    expect(up.calls).toHaveLength(0)
  })

  it("the caller's signal stops the call at once", async () => {
    const up = await startUpstream(() => {})
    const ac = new AbortController()
    const client = makeClient(up.url, { attemptTimeoutMs: 5000, totalTimeoutMs: 15000 })
    const p = rejection(client.fetch(REQUEST, { signal: ac.signal }))
    await vi.waitFor(() => expect(up.calls).toHaveLength(1))
    const t0 = Date.now()
    ac.abort()
    const err = await p
    expect(Date.now() - t0).toBeLessThan(200)
    expect(err).toBeInstanceOf(AgentError)
    expect(up.calls).toHaveLength(1)
    // An AgentError given as the reason is passed through.
    const reason = new AgentError('ShuttingDown', 503, 'shutting down')
    const already = AbortSignal.abort(reason)
    await expect(client.fetch(REQUEST, { signal: already })).rejects.toBe(reason)
  })
})

describe('EksAuthClient with the default node credential chain', () => {
  function isolateChain() {
    for (const name of [
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_CREDENTIAL_EXPIRATION',
      'AWS_PROFILE',
      'AWS_WEB_IDENTITY_TOKEN_FILE',
      'AWS_ROLE_ARN',
      'AWS_CONTAINER_CREDENTIALS_FULL_URI',
      'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
    ]) {
      vi.stubEnv(name, undefined)
    }
    vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', '/nonexistent/pod-identity-agent-test/credentials')
    vi.stubEnv('AWS_CONFIG_FILE', '/nonexistent/pod-identity-agent-test/config')
    vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true')
  }

  it('signs with credentials from the environment', async () => {
    isolateChain()
    vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDFROMENV')
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'ENV/SECRET/KEY')
    vi.stubEnv('AWS_SESSION_TOKEN', 'ENVSESSION')
    const provider = createDefaultNodeCredentialsProvider()
    const up = await startUpstream(ok)
    const client = makeClient(up.url, { credentials: provider })
    await client.fetch(REQUEST)
    await client.fetch(REQUEST)
    expect(up.calls).toHaveLength(2)
    const req = up.calls[1] as Received
    expect(req.headers['x-amz-security-token']).toBe('ENVSESSION')
    const v = await verifySignature(req, {
      accessKeyId: 'AKIDFROMENV',
      secretAccessKey: 'ENV/SECRET/KEY',
      sessionToken: 'ENVSESSION',
    })
    expect(v.signature).toBe(v.expected)
    expect(v.credential).toMatch(/^AKIDFROMENV\//)
  })

  it('a chain with nothing to offer -> NodeCredentialsError, no upstream call', async () => {
    isolateChain()
    const up = await startUpstream(ok)
    const client = makeClient(up.url, { credentials: createDefaultNodeCredentialsProvider() })
    const err = await rejection(client.fetch(REQUEST))
    expect(err).toBeInstanceOf(NodeCredentialsError)
    expect(err.code).toBe('NodeCredentialsUnavailable')
    expect(err.message).toMatch(/^unable to load the node's AWS credentials: /)
    expect(up.calls).toHaveLength(0)
  })
})
