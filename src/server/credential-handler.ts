// GET /v1/credentials. The hit path is written for the CPU budget of DESIGN section 8: one string
// compare for the route, the source's share of this event-loop turn (a Map lookup by its
// address), one pass over rawHeaders (no headers object is built), string compares for the Host,
// a Map lookup by a number made of the token's tail (no string is hashed), a write of
// pre-serialised bytes, and two monotonic clock reads for the request duration histogram.
// Everything else (JWT parsing, upstream calls, logging) happens only on a miss or an error.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { CacheEntry } from '../cache/cache-entry.js'
import type { CredentialCache } from '../cache/credential-cache.js'
import type { ScopedRequest } from '../cache/entry-scope.js'
import type { AgentError } from '../errors.js'
import {
  BadRequestError,
  MethodNotAllowedError,
  MissingTokenError,
  NotFoundError,
  RelayedRequestError,
  toAgentError,
} from '../errors.js'
import type { AgentMetrics } from '../metrics/metrics.js'
import { OUTCOME_ERROR, OUTCOME_HIT, OUTCOME_MISS } from '../metrics/hot-path-metrics.js'
import type { CheckedToken } from '../token/validity.js'
import { checkToken } from '../token/validity.js'
import type { Clock } from '../util/clock.js'
import type { Logger } from '../util/logger.js'
import { isoTime, rawLineWriter } from '../util/logger.js'
import type { ClientLimits } from './client-limits.js'
import type { HostCheck } from './host-check.js'
import { TurnShare } from './turn-share.js'

import { sendError } from './respond.js'

export const CREDENTIALS_PATH = '/v1/credentials'
/** Header the readiness self-check sends, so its 404s are not counted as pod traffic. */
export const SELF_CHECK_HEADER = 'x-pod-identity-agent-self-check'

export interface CredentialHandlerOptions {
  cache: CredentialCache
  /** Which entry a checked token reads and fills (verifies it when configured; entry-scope.ts). */
  scope: (request: CheckedToken) => Promise<ScopedRequest>
  clock: Clock
  hostCheck: HostCheck
  limits: ClientLimits
  /** Each source's share of an event-loop turn (see newTurnShare). */
  turns: TurnShare
  /** `draining` turns true on shutdown: from then on every answer says `Connection: close`. */
  lifecycle: { readonly draining: boolean }
  metrics: AgentMetrics
  logger: Logger
  /** Random value the readiness self-check sends in SELF_CHECK_HEADER. */
  selfCheckNonce: string
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void

/**
 * Answers per source address per turn of the event loop (turn-share.ts): a neighbour waits for at
 * most this many of a flooding pod's answers (bench/README.md, "Neighbours"); fewer while new
 * connections arrive, so that a burst of them is accepted quickly.
 */
const ANSWERS_PER_TURN = 16
const ANSWERS_PER_TURN_WHILE_CONNECTING = 1

/** The credential listeners' turn share (answers per source per event-loop turn). */
export function newTurnShare(): TurnShare {
  return new TurnShare({
    perTurn: ANSWERS_PER_TURN,
    perTurnWhileConnecting: ANSWERS_PER_TURN_WHILE_CONNECTING,
  })
}

// The refusals that take no argument, made once.
const NOT_FOUND = new NotFoundError()
const METHOD_NOT_ALLOWED = new MethodNotAllowedError()
const MISSING_HOST = new BadRequestError(
  'Missing required Host header (HTTP/1.1 requests must carry one)',
)
const DUPLICATE_HOST = new BadRequestError(
  'More than one Host header: a request must name one address',
)
const MISSING_TOKEN = new MissingTokenError()
const RELAYED = new RelayedRequestError()

export function createCredentialHandler(o: CredentialHandlerOptions): RequestHandler {
  const { cache, clock, hostCheck, limits, lifecycle, logger, scope, turns } = o
  const limitsRequests = limits.limitsRequests
  const responses = o.metrics.httpResponses
  const durations = o.metrics.requestDurations
  const trace = logger.isLevelEnabled('trace')
  const debug = logger.isLevelEnabled('debug')
  const writeLine = rawLineWriter(logger)

  /** One trace line per answer, same layout as pino's, from a tail pre-built once per token. */
  function traceServed(
    token: string,
    entry: CacheEntry,
    nowMs: number,
    kind: 'hit' | 'miss',
  ): void {
    const b = cache.binding(token)
    if (b === undefined) return // caching is off
    b.traceTail ??= `,"tokenDigest":${JSON.stringify(b.digest)},"namespace":${JSON.stringify(entry.association.namespace ?? null)},"serviceAccount":${JSON.stringify(entry.association.serviceAccount ?? null)},"pod":${JSON.stringify(b.claims.podName ?? null)},"entry":"${b.slot.scope}","msg":"served credentials"}\n`
    writeLine(
      `{"level":"trace","time":"${isoTime(nowMs)}","event":"served","cache":"${kind}"${b.traceTail}`,
    )
  }

  /** While the agent shuts down, an answer tells the client not to reuse its connection. */
  function lastOnConnection(res: ServerResponse): void {
    if (lifecycle.draining) res.setHeader('Connection', 'close')
  }

  function fail(res: ServerResponse, err: AgentError, head: boolean, t0: number): void {
    lastOnConnection(res)
    sendError(res, err, head)
    responses.inc(err.statusCode)
    durations.observe(OUTCOME_ERROR, clock.monotonicMs() - t0)
    if (debug && err.statusCode < 500) {
      logger.debug(
        { event: 'request_refused', status: err.statusCode, code: err.code, error: err.message },
        'refused request',
      )
    }
  }

  function ok(res: ServerResponse, entry: CacheEntry, head: boolean): void {
    lastOnConnection(res)
    res.writeHead(200, entry.headers as string[])
    res.end(head ? undefined : entry.body)
    responses.inc(200)
  }

  async function miss(
    req: IncomingMessage,
    res: ServerResponse,
    token: string,
    nowMs: number,
    head: boolean,
    t0: number,
  ): Promise<void> {
    // A request for a token whose call is already queued or in flight joins it without parsing
    // the token again (a herd of one pod's workers parses it once).
    let pending = cache.join(token, nowMs)
    if (pending === undefined) {
      let checked
      try {
        checked = checkToken(token, nowMs)
      } catch (err) {
        fail(res, toAgentError(err), head, t0)
        return
      }
      const refused = cache.refusal(token, nowMs)
      if (refused !== undefined) {
        fail(res, refused, head, t0)
        return
      }
      const source = req.socket.remoteAddress
      const spent = limits.checkMiss(source)
      if (spent !== undefined) {
        fail(res, spent, head, t0)
        return
      }
      let scoped
      try {
        scoped = await scope(checked)
      } catch (err) {
        // A token refused on the node spends its source's budget, as a call would.
        limits.takeMiss(source)
        fail(res, toAgentError(err), head, t0)
        return
      }
      // Only a request that would start an upstream call counts towards its source's limit.
      pending = cache.resolve(scoped, { requester: source, admit: () => limits.takeMiss(source) })
    }
    try {
      const entry = await pending
      ok(res, entry, head)
      durations.observe(OUTCOME_MISS, clock.monotonicMs() - t0)
      if (trace) traceServed(token, entry, clock.now(), 'miss')
    } catch (err) {
      fail(res, toAgentError(err), head, t0)
    }
  }

  /** A credential request, answered in its source's share of this turn or of a later one. */
  function credentials(req: IncomingMessage, res: ServerResponse): void {
    const t0 = clock.monotonicMs()
    const source = req.socket.remoteAddress ?? ''
    if (turns.take(source, () => answer(req, res, t0))) answer(req, res, t0)
  }

  function answer(req: IncomingMessage, res: ServerResponse, t0: number): void {
    const method = req.method
    const head = method === 'HEAD'
    if (limitsRequests) {
      const limited = limits.takeRequest()
      if (limited !== undefined) {
        fail(res, limited, head, t0)
        return
      }
    }
    if (method !== 'GET' && !head) {
      fail(res, METHOD_NOT_ALLOWED, false, t0)
      return
    }
    const raw = req.rawHeaders
    let host: string | undefined
    let duplicateHost = false
    let token: string | undefined
    let forwarded = false
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string
      switch (name.length) {
        case 4:
          if (name === 'Host' || name === 'host' || name.toLowerCase() === 'host') {
            if (host === undefined) host = raw[i + 1] as string
            else duplicateHost = true
          }
          break
        case 13:
          if (
            token === undefined &&
            (name === 'Authorization' ||
              name === 'authorization' ||
              name.toLowerCase() === 'authorization')
          ) {
            token = raw[i + 1] as string
          }
          break
        case 9:
          if (name.toLowerCase() === 'forwarded') forwarded = true
          break
        case 15:
          if (name.toLowerCase() === 'x-forwarded-for') forwarded = true
          break
      }
    }
    if (duplicateHost) {
      fail(res, DUPLICATE_HOST, head, t0)
      return
    }
    try {
      hostCheck.check(host ?? '')
    } catch (err) {
      fail(res, host === undefined && isHttp11(req) ? MISSING_HOST : toAgentError(err), head, t0)
      return
    }
    if (forwarded) {
      fail(res, RELAYED, head, t0)
      return
    }
    if (token === undefined || token === '') {
      fail(res, MISSING_TOKEN, head, t0)
      return
    }
    const now = clock.now()
    const entry = cache.lookup(token, now)
    if (entry !== undefined) {
      ok(res, entry, head)
      durations.observe(OUTCOME_HIT, clock.monotonicMs() - t0)
      if (trace) traceServed(token, entry, now, 'hit')
      return
    }
    void miss(req, res, token, now, head, t0)
  }

  return function handle(req, res) {
    if (req.url === CREDENTIALS_PATH) {
      credentials(req, res)
      return
    }
    const url = req.url ?? ''
    const q = url.indexOf('?')
    if ((q === -1 ? url : url.slice(0, q)) === CREDENTIALS_PATH) {
      credentials(req, res)
      return
    }
    // Node's parser is told not to refuse a missing Host (the credential path answers that
    // itself, as JSON), so every other path does too, as RFC 9112 section 3.2 asks.
    const err = req.headers.host === undefined && isHttp11(req) ? MISSING_HOST : NOT_FOUND
    lastOnConnection(res)
    sendError(res, err, req.method === 'HEAD')
    if (req.headers[SELF_CHECK_HEADER] !== o.selfCheckNonce) responses.inc(err.statusCode)
  }
}

function isHttp11(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 1 && req.httpVersionMinor === 1
}
