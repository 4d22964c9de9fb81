// Errors become HTTP responses here and only here: JSON `{"Code","Message"}` that every SDK can read.

import type { ServerResponse } from 'node:http'
import type { AgentError } from '../errors.js'

/** Serialise an error body: `{"Code":"...","Message":"..."}`. */
export function errorBody(code: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ Code: code, Message: message }))
}

/** Extra headers some statuses carry. */
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
