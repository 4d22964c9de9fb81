// Errors become HTTP responses here and only here: JSON `{"Code","Message"}` that every SDK can read.

import type { ServerResponse } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { AgentError } from '../errors.js'
import {
  BadRequestError,
  HeaderFieldsTooLargeError,
  PayloadTooLargeError,
  RequestTimeoutError,
} from '../errors.js'

/** Serialise an error body: `{"Code":"...","Message":"..."}`. */
export function errorBody(code: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ Code: code, Message: message }))
}

/** Extra headers some statuses carry (flat name, value list). */
function extraHeaders(err: AgentError): string[] {
  switch (err.statusCode) {
    case 405:
      return ['Allow', 'GET, HEAD']
    case 429:
    case 503:
      return ['Retry-After', String(err.retryAfterSeconds ?? 1)]
    default:
      return []
  }
}

/** Write an AgentError as the response (no body for HEAD). */
export function sendError(res: ServerResponse, err: AgentError, head: boolean): void {
  const body = errorBody(err.code, err.message)
  res.writeHead(err.statusCode, [
    'Content-Type',
    'application/json',
    'Content-Length',
    String(body.length),
    ...extraHeaders(err),
  ])
  res.end(head ? undefined : body)
}

/** What Node's HTTP parser reports on a socket it refused to parse further ('clientError'). */
export interface ClientError extends Error {
  code?: string
  /** llhttp's fixed description of a parse error, e.g. "Invalid method encountered". */
  reason?: string
}

/** llhttp reasons are fixed texts; anything else is not quoted. */
const REASON_SYNTAX = /^[A-Za-z0-9 ,.'()_-]{1,120}$/

/** The error for a request Node refused before any handler saw it. */
export function clientErrorAnswer(err: ClientError, maxHeaderBytes: number): AgentError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new HeaderFieldsTooLargeError(maxHeaderBytes)
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new PayloadTooLargeError('Chunk extensions too large')
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new RequestTimeoutError()
    default: {
      const why =
        err.reason !== undefined && REASON_SYNTAX.test(err.reason)
          ? err.reason
          : 'the request could not be parsed'
      return new BadRequestError(`Malformed HTTP request: ${why}`)
    }
  }
}

/**
 * Answers a request Node's parser refused with the JSON error every other refusal gets, then
 * closes the connection, as Node's own handler does with its bare responses: nothing is written
 * when the peer is gone or a response on this connection has begun. Returns the status written.
 */
export function sendClientError(
  socket: Duplex,
  err: ClientError,
  maxHeaderBytes: number,
): number | undefined {
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent === true) {
    socket.destroy()
    return undefined
  }
  return sendOnSocket(socket, clientErrorAnswer(err, maxHeaderBytes))
}

/**
 * Writes an AgentError as a whole HTTP/1.1 response straight on a socket no ServerResponse owns
 * (a request Node refused, a CONNECT), with `Connection: close`, and closes it. Returns the status.
 */
export function sendOnSocket(socket: Duplex, answer: AgentError): number {
  const status = answer.statusCode
  const body = errorBody(answer.code, answer.message)
  const extra = extraHeaders(answer)
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n`
  for (let i = 0; i < extra.length; i += 2) head += `${extra[i]}: ${extra[i + 1]}\r\n`
  socket.write(Buffer.concat([Buffer.from(`${head}Connection: close\r\n\r\n`, 'latin1'), body]))
  socket.destroy()
  return status
}
