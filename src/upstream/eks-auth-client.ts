// The agent's primary upstream: EKS Auth AssumeRoleForPodIdentity over restJson1, signed with
// SigV4 (protocol.md 1.2, 1.8), sent with undici through a keep-alive, proxy-aware dispatcher.
// Retries as retry.ts says: only what can heal by itself, never a 4xx. Messages never carry a
// token, key or secret. Over 250 lines: the request, its signing and the mapping of every
// transport failure are one contract.

// undici and the signer are imported lazily (see #load): loading them takes a noticeable part of
// the 500 ms the agent has to become ready (bench/README.md). Types only here.
import type { SignatureV4 } from '@smithy/signature-v4'
import type { Dispatcher } from 'undici'
import { isClusterName, validateEndpointUrl } from '../config/values.js'
import {
  AgentError,
  InvalidUpstreamResponseError,
  NodeCredentialsError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
} from '../errors.js'
import type { NodeCredentials, NodeCredentialsProvider } from '../node-credentials/types.js'
import type { CheckedToken } from '../token/validity.js'
import type { Clock } from '../util/clock.js'
import {
  MAX_RESPONSE_BYTES,
  getHeader,
  parseErrorResponse,
  parseSuccessBody,
  type ResponseHeaders,
} from './eks-auth-response.js'
import { readCapped } from './read-capped.js'
import type { RetryPolicy } from './retry.js'
import { attemptSignal, callerAbortError, withRetries } from './retry.js'
import type { CredentialSource, FetchOptions, SourceAnswer } from './types.js'
import { DEFAULT_MAX_WINDOW } from './upstream-gate.js'

/** What the `onAttempt` hook sees of one HTTP attempt. Never a token or a secret. */
export interface EksAuthAttempt {
  /** Time from sending the request to the outcome, in ms (the clock's monotonic reading). */
  durationMs: number
  outcome: 'success' | 'error'
  /** HTTP status when a response arrived. */
  statusCode?: number | undefined
  /** Error code (upstream code, or the agent's code for transport failures) when outcome is error. */
  code?: string | undefined
  /** 1-based attempt number within one fetch call. */
  attempt: number
}

export interface EksAuthClientOptions {
  /** EKS cluster name, the `{clusterName}` path label. Must match `^[0-9A-Za-z][A-Za-z0-9_-]*$` (1-100 chars). */
  clusterName: string
  /** SigV4 signing region (a base region such as `us-west-2`, never `fips-...`). */
  region: string
  /**
   * EKS Auth base URL, e.g. `https://eks-auth.us-west-2.api.aws` (see resolveEksAuthEndpoint), or
   * `http://127.0.0.1:PORT`; a path prefix is kept and the operation path appended to it.
   */
  endpoint: string
  /** The node's own credentials, used to sign. Failures become NodeCredentialsError (no retry). */
  credentials: NodeCredentialsProvider
  /** Signing dates, backoff sleeps (clock.setTimer), the total budget and attempt durations. */
  clock: Clock
  /**
   * HTTP dispatcher. Default: an undici `EnvHttpProxyAgent` (honours HTTPS_PROXY / HTTP_PROXY /
   * NO_PROXY) with the connect timeout below and keep-alive, owned and closed by `close()`. An
   * injected dispatcher is never closed by this client.
   */
  dispatcher?: Dispatcher | undefined
  /** TCP (+TLS) connect timeout of the default dispatcher, in ms. Default 500. */
  connectTimeoutMs?: number | undefined
  /** Budget of one attempt, headers and body, in ms. Default 1000 (the reference's client Timeout). */
  attemptTimeoutMs?: number | undefined
  /** Most attempts per fetch call, first one included. Default 3. */
  maxAttempts?: number | undefined
  /** No attempt is started that could not finish within this many ms of the call's start. Default 3000. */
  totalTimeoutMs?: number | undefined
  /** Source of [0, 1) numbers for backoff jitter. Default Math.random. */
  random?: (() => number) | undefined
  /** Called after every HTTP attempt, for metrics and logs. Exceptions it throws are ignored. */
  onAttempt?: ((a: EksAuthAttempt) => void) | undefined
}

/** Idle keep-alive of the default dispatcher's sockets when the server sends no hint, in ms. */
const KEEP_ALIVE_TIMEOUT_MS = 20_000
const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
])

function positive(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt
  if (!Number.isFinite(v) || v <= 0) throw new Error(`EksAuthClient: ${name} must be > 0, got ${v}`)
  return v
}

/** A short, secret-free reason for a transport or provider failure. */
function shortReason(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const e = err as { code?: unknown; errors?: unknown; cause?: unknown; message?: unknown }
    if (typeof e.code === 'string' && e.code !== '') return e.code
    // Happy eyeballs (several addresses tried) reports an AggregateError.
    if (Array.isArray(e.errors) && e.errors.length > 0) return shortReason(e.errors[0])
    if (typeof e.cause === 'object' && e.cause !== null) {
      const c = e.cause as { code?: unknown }
      if (typeof c.code === 'string' && c.code !== '') return c.code
    }
    if (typeof e.message === 'string' && e.message !== '') {
      const m = e.message.replace(/\s+/g, ' ')
      return m.length > 200 ? `${m.slice(0, 200)}...` : m
    }
  }
  return 'unknown error'
}

function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? code : undefined
}

/** What #load builds once per client: the dispatcher and the signer. */
interface Transport {
  dispatcher: Dispatcher
  signer: SignatureV4
}

export class EksAuthClient implements CredentialSource {
  readonly #clock: Clock
  readonly #region: string
  readonly #credentials: () => Promise<NodeCredentials>
  readonly #injectedDispatcher: Dispatcher | undefined
  readonly #connectTimeoutMs: number
  #transport: Transport | undefined
  #loading: Promise<Transport> | undefined
  readonly #protocol: string
  readonly #hostname: string
  readonly #port: number | undefined
  /** `host` header: host name, plus `:port` only when not the scheme's default. */
  readonly #hostHeader: string
  readonly #path: string
  readonly #origin: string
  readonly #attemptTimeoutMs: number
  readonly #retry: RetryPolicy
  readonly #onAttempt: ((a: EksAuthAttempt) => void) | undefined

  constructor(opts: EksAuthClientOptions) {
    if (!isClusterName(opts.clusterName)) {
      throw new Error(
        `EksAuthClient: invalid cluster name ${JSON.stringify(opts.clusterName)} (1-100 letters, digits, '-' or '_', starting with a letter or digit)`,
      )
    }
    if (opts.region.trim() === '') throw new Error('EksAuthClient: region is required')
    const url = validateEndpointUrl(opts.endpoint, 'EKS Auth endpoint')
    this.#clock = opts.clock
    this.#protocol = url.protocol
    // URL keeps IPv6 brackets in hostname; the signer and undici expect them in the host header.
    this.#hostname = url.hostname
    this.#port = url.port === '' ? undefined : Number(url.port)
    this.#hostHeader = url.host
    this.#path = `${url.pathname.replace(/\/+$/, '')}/clusters/${opts.clusterName}/assume-role-for-pod-identity`
    this.#origin = url.origin

    this.#region = opts.region
    this.#connectTimeoutMs = positive('connectTimeoutMs', opts.connectTimeoutMs, 500)
    this.#attemptTimeoutMs = positive('attemptTimeoutMs', opts.attemptTimeoutMs, 1000)
    this.#retry = {
      clock: opts.clock,
      attemptTimeoutMs: this.#attemptTimeoutMs,
      maxAttempts: Math.floor(positive('maxAttempts', opts.maxAttempts, 3)),
      totalTimeoutMs: positive('totalTimeoutMs', opts.totalTimeoutMs, 3000),
      random: opts.random ?? Math.random,
    }
    this.#onAttempt = opts.onAttempt

    this.#injectedDispatcher = opts.dispatcher

    const provider = opts.credentials
    this.#credentials = async (): Promise<NodeCredentials> => {
      try {
        return await provider()
      } catch (err) {
        if (err instanceof NodeCredentialsError) throw err
        throw new NodeCredentialsError(
          `unable to load the node's AWS credentials: ${shortReason(err)}`,
          { cause: err },
        )
      }
    }
  }

  /**
   * Imports undici and the SigV4 signer and builds the dispatcher and the signer, once per client
   * (concurrent callers share the promise; a failed import is retried by the next call).
   */
  #load(): Promise<Transport> {
    if (this.#loading === undefined) {
      const p = (async (): Promise<Transport> => {
        const [undici, sigv4, hashNode] = await Promise.all([
          import('undici'),
          import('@smithy/signature-v4'),
          import('@smithy/hash-node'),
        ])
        const dispatcher =
          this.#injectedDispatcher ??
          new undici.EnvHttpProxyAgent({
            connect: { timeout: this.#connectTimeoutMs },
            // As many connections as the upstream gate keeps calls in flight, reused (each new
            // TLS connection costs the node a handshake).
            connections: DEFAULT_MAX_WINDOW,
            keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
            headersTimeout: this.#attemptTimeoutMs,
            bodyTimeout: this.#attemptTimeoutMs,
          })
        // One signer for the client's life: it caches derived signing keys.
        const signer = new sigv4.SignatureV4({
          service: 'eks-auth',
          region: this.#region,
          credentials: this.#credentials,
          sha256: hashNode.Hash.bind(null, 'sha256'),
        })
        const transport = { dispatcher, signer }
        this.#transport = transport
        return transport
      })()
      this.#loading = p
      p.catch(() => {
        if (this.#loading === p) this.#loading = undefined
      })
    }
    return this.#loading
  }

  /**
   * Loads the HTTP client and the signer and resolves the node's credentials, in the background
   * (once the listeners are up), so that the first upstream call pays for none of it.
   */
  warmUp(): Promise<void> {
    return Promise.all([this.#load(), this.#credentials()]).then(
      () => undefined,
      () => undefined,
    )
  }

  fetch(request: CheckedToken, options: FetchOptions = {}): Promise<SourceAnswer> {
    const { token } = request
    const body = Buffer.from(JSON.stringify({ token }))
    return withRetries(
      this.#retry,
      'EKS Auth',
      (n) => this.#attempt(token, body, n, options.signal),
      options.signal,
    )
  }

  /** Closes the default dispatcher's sockets. An injected dispatcher is left to its owner. */
  async close(): Promise<void> {
    if (this.#loading === undefined || this.#injectedDispatcher !== undefined) return
    const transport = await this.#loading.catch(() => undefined)
    await transport?.dispatcher.close()
  }

  async #sign(signer: SignatureV4, body: Buffer): Promise<Record<string, string>> {
    try {
      const signed = await signer.sign(
        {
          method: 'POST',
          protocol: this.#protocol,
          hostname: this.#hostname,
          port: this.#port,
          path: this.#path,
          query: {},
          headers: {
            host: this.#hostHeader,
            'content-type': 'application/json',
            'content-length': String(body.length),
          },
          body,
        },
        { signingDate: new Date(this.#clock.now()) },
      )
      return signed.headers
    } catch (err) {
      if (err instanceof NodeCredentialsError) throw err
      // e.g. the provider resolved an object without keys: the signer's own check fails.
      throw new NodeCredentialsError(
        `unable to sign the EKS Auth request with the node's AWS credentials: ${shortReason(err)}`,
        { cause: err },
      )
    }
  }

  async #attempt(
    token: string,
    body: Buffer,
    attempt: number,
    signal?: AbortSignal,
  ): Promise<SourceAnswer> {
    const transport = this.#transport ?? (await this.#load())
    const headers = await this.#sign(transport.signer, body)
    if (signal?.aborted) throw callerAbortError(signal, 'EKS Auth')

    const t0 = this.#clock.monotonicMs()
    // The attempt's deadline (undici's header and body timeouts bound each phase in real time as
    // well), chained to the caller's signal and released in `finally`.
    const deadline = attemptSignal(this.#retry, signal)

    let statusCode: number | undefined
    let outcome: 'success' | 'error' = 'error'
    let code: string | undefined
    try {
      let res: Dispatcher.ResponseData
      try {
        res = await transport.dispatcher.request({
          origin: this.#origin,
          path: this.#path,
          method: 'POST',
          headers,
          body,
          signal: deadline.signal,
          headersTimeout: this.#attemptTimeoutMs,
          bodyTimeout: this.#attemptTimeoutMs,
        })
      } catch (err) {
        throw this.#transportError(err, deadline.signal, signal)
      }
      statusCode = res.statusCode
      const resHeaders = res.headers as ResponseHeaders

      if (statusCode >= 200 && statusCode < 300) {
        let buf: Buffer | undefined
        try {
          buf = await readCapped(res.body, resHeaders, MAX_RESPONSE_BYTES)
        } catch (err) {
          throw this.#transportError(err, deadline.signal, signal)
        }
        if (buf === undefined) {
          throw new InvalidUpstreamResponseError(
            `response body from EKS Auth larger than ${MAX_RESPONSE_BYTES} bytes`,
          )
        }
        const answer = parseSuccessBody(buf)
        outcome = 'success'
        return answer
      }

      if (statusCode >= 300 && statusCode < 400) {
        res.body.dump().catch(() => {})
        throw new InvalidUpstreamResponseError(
          `unexpected redirect (HTTP ${statusCode}) from EKS Auth`,
        )
      }

      let buf: Buffer | undefined
      try {
        buf = await readCapped(res.body, resHeaders, MAX_RESPONSE_BYTES)
      } catch {
        if (signal?.aborted) throw callerAbortError(signal, 'EKS Auth')
        res.body.destroy()
        buf = undefined // the status and headers are still known
      }
      // What the request carried that the answer must not quote back into bodies and logs.
      const sent = [token, getHeader(headers, 'x-amz-security-token')]
      throw parseErrorResponse(statusCode, resHeaders, buf, sent)
    } catch (err) {
      code = err instanceof AgentError ? err.code : 'InternalError'
      throw err
    } finally {
      deadline.release()
      if (this.#onAttempt !== undefined) {
        try {
          this.#onAttempt({
            durationMs: this.#clock.monotonicMs() - t0,
            outcome,
            statusCode,
            code: outcome === 'error' ? code : undefined,
            attempt,
          })
        } catch {
          // a faulty hook must not change the outcome
        }
      }
    }
  }

  #transportError(
    err: unknown,
    attemptSignal: AbortSignal,
    callerSignal?: AbortSignal,
  ): AgentError {
    if (callerSignal?.aborted) return callerAbortError(callerSignal, 'EKS Auth')
    const code = errorCode(err)
    if (attemptSignal.aborted || (code !== undefined && TIMEOUT_CODES.has(code))) {
      return new UpstreamTimeoutError(
        `EKS Auth did not answer within ${this.#attemptTimeoutMs} ms`,
        { cause: err },
      )
    }
    return new UpstreamUnreachableError(
      `unable to reach EKS Auth at ${this.#hostHeader}: ${shortReason(err)}`,
      { cause: err },
    )
  }
}
