// HTTP servers: one credential listener per bind host (each bound on its own: one that cannot be
// bound is logged and skipped), plus the probe and metrics servers.

import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer } from 'node:http'
import { Server as NetServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from '../util/logger.js'

export interface BoundServer {
  server: Server
  /** Address as bound (IPv6 without brackets). */
  host: string
  port: number
}

/** Timeouts and limits of every server the agent runs. */
export const SERVER_OPTIONS = {
  /** Whole request (headers + body) must arrive within this (slow clients cannot hold a slot). */
  requestTimeout: 30_000,
  /** Headers must arrive within this. */
  headersTimeout: 10_000,
  /** Idle keep-alive connections are closed after this; SDKs reuse connections within it. */
  keepAliveTimeout: 5_000,
  /** Largest header block accepted (bytes); larger requests get 431. */
  maxHeaderSize: 16 * 1024,
  /**
   * How often the two timeouts above are checked: a slow request gets its 408 at most this long
   * after its timeout (Node's default, 30 s, made the 10 s header timeout 10-40 s).
   */
  connectionsCheckingInterval: 1000,
} as const

/** What the credential listeners add to a plain listen(). */
export interface CredentialListenOptions {
  /** Answers requests Node's parser refuses; without it, Node's bare responses are sent. */
  onClientError?: (err: Error, socket: Duplex) => void
  /** Let a missing Host through to the handler (which answers it). Node's default: refuse it. */
  requireHostHeader?: boolean
  /** Told of every new connection, after Node's own HTTP set-up (it may close the socket). */
  onConnection?: (socket: Socket) => void
  /** Answers a CONNECT request; without it, Node closes the connection unanswered. */
  onConnect?: (req: IncomingMessage, socket: Duplex) => void
  /** Answers a request whose `Expect` is not 100-continue; without it, Node sends a bare 417. */
  onExpectation?: (req: IncomingMessage, res: ServerResponse) => void
}

export function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  host: string,
  port: number,
  opts: CredentialListenOptions = {},
): Promise<BoundServer> {
  const server = createServer(
    { ...SERVER_OPTIONS, noDelay: true, requireHostHeader: opts.requireHostHeader ?? true },
    handler,
  )
  if (opts.onClientError !== undefined) server.on('clientError', opts.onClientError)
  if (opts.onConnection !== undefined) server.on('connection', opts.onConnection)
  if (opts.onConnect !== undefined) server.on('connect', opts.onConnect)
  if (opts.onExpectation !== undefined) server.on('checkExpectation', opts.onExpectation)
  server.keepAliveTimeout = SERVER_OPTIONS.keepAliveTimeout
  server.headersTimeout = SERVER_OPTIONS.headersTimeout
  server.requestTimeout = SERVER_OPTIONS.requestTimeout
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.removeListener('listening', onListening)
      reject(err)
    }
    const onListening = (): void => {
      server.removeListener('error', onError)
      // Malformed requests, oversized headers (431) and timeouts (408): onClientError when
      // given, else Node's default clientError handling. Neither throws.
      const addr = server.address() as AddressInfo
      resolve({ server, host: addr.address, port: addr.port })
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen({ host, port, exclusive: true })
  })
}

/** Bind every host; skip (and log) the ones that fail; throw only when none could be bound. */
export async function bindCredentialListeners(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  hosts: readonly string[],
  port: number,
  logger: Logger,
  opts: CredentialListenOptions = {},
): Promise<BoundServer[]> {
  const results = await Promise.allSettled(hosts.map((h) => listen(handler, h, port, opts)))
  const bound: BoundServer[] = []
  const failures: string[] = []
  results.forEach((r, i) => {
    const host = hosts[i] as string
    if (r.status === 'fulfilled') {
      bound.push(r.value)
      logger.info(
        { event: 'listening', host: r.value.host, port: r.value.port },
        'serving credentials',
      )
    } else {
      const e = r.reason as NodeJS.ErrnoException
      const why = e.code ?? e.message
      failures.push(`${host}:${port} (${why})`)
      logger.error(
        { event: 'bind_failed', host, port, code: e.code, error: e.message },
        'cannot bind credential listener; skipping this address',
      )
    }
  })
  if (bound.length === 0) {
    for (const b of bound) b.server.close()
    throw new Error(`could not bind any credential listener: ${failures.join(', ')}`)
  }
  return bound
}

/**
 * Drain a credential listener on shutdown: stop accepting (new connections are refused) and keep
 * every open connection until it closes by itself, or until graceMs have passed. The handler
 * answers each request from then on with `Connection: close`, so a client that sends its next
 * request back to back gets its answer and then a clean close; an idle keep-alive connection is
 * closed by its keep-alive timeout, which clients are told of (`Keep-Alive: timeout=5`).
 * http.Server's own close() would instead destroy every idle connection at once, resetting the
 * request a busy client may already have sent on it; net.Server's close() (its base class) does
 * only the first part.
 */
export function drainServer(s: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!s.listening) {
      resolve()
      return
    }
    const hard = setTimeout(() => s.closeAllConnections(), graceMs)
    hard.unref()
    NetServer.prototype.close.call(s, () => {
      clearTimeout(hard)
      resolve()
    })
  })
}

/** Close a server: stop accepting, let in-flight requests finish, close idle keep-alive sockets. */
export function closeServer(s: Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!s.listening) {
      resolve()
      return
    }
    const sweep = setInterval(() => s.closeIdleConnections(), 50)
    const hard = setTimeout(() => s.closeAllConnections(), graceMs)
    sweep.unref()
    hard.unref()
    s.close(() => {
      clearInterval(sweep)
      clearTimeout(hard)
      resolve()
    })
    s.closeIdleConnections()
  })
}
