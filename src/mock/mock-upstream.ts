// What the shipped mocks of AWS upstreams (EKS Auth, STS) share: the HTTP server's life, injected
// faults (latency, throttling, 5xx, dead sockets), call counts by outcome, and the admin
// endpoints under /_mock/ for out-of-process control. Each mock adds its own wire format.

import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { TokenBucket } from '../util/token-bucket.js'
import type { Faults } from './faults.js'
import { DEFAULT_FAULTS, validateFaults } from './faults.js'

export type { Faults } from './faults.js'
export { DEFAULT_FAULTS, validateFaults } from './faults.js'

export interface MockStats {
  /** API requests (admin endpoints excluded). */
  requests: number
  /** `success` or the error code, e.g. `ThrottlingException`; `SocketDestroyed` for `down`. */
  byOutcome: Record<string, number>
  /** Distinct access key ids that signed requests, in the order first seen (signed APIs). */
  accessKeyIds: string[]
}

/** One answer of a mock: status, the outcome it is counted as, headers and body. */
export interface Answer {
  status: number
  outcome: string
  headers: Record<string, string | number>
  body: string
}

export interface MockUpstreamOptions {
  /** Default `127.0.0.1`. */
  host?: string | undefined
  /** Default 0 (any free port). */
  port?: number | undefined
  faults?: Partial<Faults> | undefined
  /** Epoch ms. Default Date.now. */
  now?: (() => number) | undefined
}

/** A mock upstream server. Call start() to listen and stop() to close every connection. */
export abstract class MockUpstream {
  protected readonly now: () => number
  readonly #host: string
  readonly #port: number
  #faults: Faults
  /** The throttling fault's bucket (rate = burst = throttleQps, full at each change); off at 0. */
  #bucket: TokenBucket | undefined
  #stats = { requests: 0, byOutcome: new Map<string, number>(), accessKeyIds: new Set<string>() }
  #server: Server | undefined
  #url: string | undefined

  constructor(o: MockUpstreamOptions) {
    this.#host = o.host ?? '127.0.0.1'
    this.#port = o.port ?? 0
    this.now = o.now ?? Date.now
    this.#faults = { ...DEFAULT_FAULTS, ...validateFaults(o.faults ?? {}) }
    this.#bucket = this.#throttleBucket(this.#faults.throttleQps)
  }

  /** An API request (not an admin one, and not dropped by the `down` fault). */
  protected abstract serve(req: IncomingMessage, res: ServerResponse, url: string): void

  /** Listen; resolves the base URL, e.g. `http://127.0.0.1:41234`. */
  async start(): Promise<string> {
    if (this.#server !== undefined) throw new Error(`${this.constructor.name} is already started`)
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

  /** Record the access key id that signed a request. */
  protected sawAccessKeyId(id: string): void {
    this.#stats.accessKeyIds.add(id)
  }

  /** True when the throttling fault refuses this call. */
  protected throttled(): boolean {
    return this.#bucket?.tryTake() === false
  }

  /** The status of an injected server error for this call, if the error fault picks it. */
  protected injectedError(): 500 | 503 | undefined {
    const { errorRate, errorStatus } = this.#faults
    return errorRate > 0 && Math.random() < errorRate ? errorStatus : undefined
  }

  /**
   * Answer a request with what `work` gives (`ok`), or `failed(err)` for its error; a client that
   * went away meanwhile is counted, not answered.
   */
  protected settle(
    req: IncomingMessage,
    res: ServerResponse,
    work: Promise<string>,
    answers: { ok: (body: string) => Answer; failed: (err: unknown) => Answer },
  ): void {
    work
      .then(answers.ok, (err: unknown) => {
        if (!req.socket.destroyed) return answers.failed(err)
        this.count('ClientClosed')
        return undefined
      })
      .then((a) =>
        a === undefined ? undefined : this.answer(res, a.status, a.outcome, a.headers, a.body),
      )
      .catch(() => res.destroy())
  }

  /** Answer after the latency fault, counting the outcome. */
  protected async answer(
    res: ServerResponse,
    status: number,
    outcome: string,
    headers: Record<string, string | number>,
    body: string,
  ): Promise<void> {
    const latency = this.#faults.latencyMs
    if (latency > 0) await sleep(latency)
    this.count(outcome)
    if (res.destroyed) return
    res.writeHead(status, { 'Content-Length': Buffer.byteLength(body), ...headers })
    res.end(body)
  }

  protected count(outcome: string): void {
    this.#stats.byOutcome.set(outcome, (this.#stats.byOutcome.get(outcome) ?? 0) + 1)
  }

  #throttleBucket(qps: number): TokenBucket | undefined {
    return qps > 0
      ? new TokenBucket({ clock: { now: this.now }, ratePerSecond: qps, burst: Math.max(1, qps) })
      : undefined
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/'
    if (url.startsWith('/_mock/')) {
      this.#admin(req, res, url).catch(() => sendJson(res, 500, { message: 'admin error' }))
      return
    }
    this.#stats.requests++
    if (this.#faults.down) {
      this.count('SocketDestroyed')
      req.socket.destroy()
      return
    }
    this.serve(req, res, url)
  }

  async #admin(req: IncomingMessage, res: ServerResponse, url: string): Promise<void> {
    const path = url.split('?')[0]
    const method = req.method ?? 'GET'
    if (path === '/_mock/stats' && method === 'GET') return sendJson(res, 200, this.stats)
    if (path === '/_mock/faults' && method === 'GET') return sendJson(res, 200, this.faults)
    if (path === '/_mock/faults' && method === 'POST') {
      const body = await readBody(req, 64 * 1024)
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

/** The whole body, or undefined when it is over `maxBytes`. Rejects when the client goes away. */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    let over = false
    req.on('data', (chunk: Buffer) => {
      if (over) return
      size += chunk.length
      if (size > maxBytes) over = true
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

/** Text cut to 100 characters, for quoting a client's input in an error. */
export function clip(s: string): string {
  return s.length > 100 ? `${s.slice(0, 100)}...` : s
}
