// Requests the credential listeners refuse before the credential handler sees them: what Node's
// parser cannot parse or times out, a CONNECT, an Expect header other than 100-continue. Each gets
// the JSON error every other refusal gets (Node's own answers are bare, or none), is counted in
// pod_identity_http_response, and its connection is closed.

import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { ExpectationFailedError, MethodNotAllowedError } from '../errors.js'
import type { AgentMetrics } from '../metrics/metrics.js'
import type { Logger } from '../util/logger.js'
import { SERVER_OPTIONS } from './listeners.js'
import type { ClientError } from './respond.js'
import { sendClientError, sendError, sendOnSocket } from './respond.js'

export type ClientErrorHandler = (err: ClientError, socket: Duplex) => void

/**
 * The credential listeners' 'clientError' handler: a request Node's parser refused (malformed,
 * headers over the limit, too slow) gets the same JSON error as every other refusal, is counted
 * in pod_identity_http_response, and the connection is closed.
 */
export function createClientErrorHandler(o: {
  metrics: AgentMetrics
  logger: Logger
}): ClientErrorHandler {
  const responses = o.metrics.httpResponses
  const debug = o.logger.isLevelEnabled('debug')
  return (err, socket) => {
    const status = sendClientError(socket, err, SERVER_OPTIONS.maxHeaderSize)
    if (status === undefined) return
    responses.inc(status)
    if (debug) {
      o.logger.debug(
        { event: 'request_refused', status, code: err.code, error: err.reason },
        'refused malformed request',
      )
    }
  }
}

const EXPECTATION_FAILED = new ExpectationFailedError()
const METHOD_NOT_ALLOWED = new MethodNotAllowedError()

/**
 * The credential listeners' 'checkExpectation' handler: an `Expect` other than 100-continue gets
 * the JSON 417 (Node's own answer is a bare one), is counted, and the connection is closed.
 */
export function createExpectationHandler(o: {
  metrics: AgentMetrics
}): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    res.setHeader('Connection', 'close')
    sendError(res, EXPECTATION_FAILED, req.method === 'HEAD')
    o.metrics.httpResponses.inc(EXPECTATION_FAILED.statusCode)
  }
}

/**
 * The credential listeners' 'connect' handler: a CONNECT gets the JSON 405 every other method
 * gets (without a handler Node closes the connection unanswered), is counted, and is closed.
 */
export function createConnectHandler(o: {
  metrics: AgentMetrics
}): (req: IncomingMessage, socket: Duplex) => void {
  return (_req, socket) => o.metrics.httpResponses.inc(sendOnSocket(socket, METHOD_NOT_ALLOWED))
}
