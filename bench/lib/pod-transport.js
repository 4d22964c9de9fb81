// Transport shim for running many simulated pods, each with the real AWS SDK provider, in one
// process. fromHttp() builds its own NodeHttpHandler and http.Agent and accepts neither an agent
// nor a localAddress, so the pod's source address travels in an AsyncLocalStorage: every pod runs
// inside podContext.run(pod, ...), and http.Agent.prototype.createConnection (what every
// http.Agent, the SDK's included, calls to open a socket) adds `localAddress` from the store.
// The SDK code itself is untouched: same timeouts, retries, headers and connection handling.
//
// The shim also observes, without changing anything:
// - every http.request() the SDK makes (one per attempt): its outcome, status and headers;
// - every byte a pod's socket receives, parsed into HTTP responses, so that the body of each
//   error answer can be checked (JSON with a Code?) without touching the SDK's response stream;
// - the local address each socket really got (mismatches are counted: the shim verifies itself).
//
// Import this module before the SDK makes its first request (node-http-handler takes
// http.request from the module object when its first agent is created).

import { AsyncLocalStorage } from 'node:async_hooks'
import http from 'node:http'
import { performance } from 'node:perf_hooks'

/** Store: { localAddress, attempts: [], responses: [] } per pod. */
export const podContext = new AsyncLocalStorage()

export const transportStats = {
  sockets: 0,
  /** Sockets opened outside a pod context (none expected). */
  socketsWithoutPod: 0,
  /** Sockets whose local address is not the pod's (none expected: the shim works). */
  addressMismatches: 0,
}

const originalCreateConnection = http.Agent.prototype.createConnection
http.Agent.prototype.createConnection = function createConnection(options, callback) {
  const pod = podContext.getStore()
  if (pod === undefined) {
    transportStats.socketsWithoutPod++
    return originalCreateConnection.call(this, options, callback)
  }
  transportStats.sockets++
  const socket = originalCreateConnection.call(
    this,
    { ...options, localAddress: pod.localAddress },
    callback,
  )
  socket.once('connect', () => {
    if (socket.localAddress !== pod.localAddress) transportStats.addressMismatches++
  })
  tapResponses(socket, pod)
  return socket
}

const originalRequest = http.request
http.request = function request(...args) {
  const req = originalRequest.apply(this, args)
  const pod = podContext.getStore()
  if (pod !== undefined) {
    const attempt = { t0: performance.now(), outcome: 'pending' }
    pod.attempts.push(attempt)
    req.once('response', (res) => {
      attempt.outcome = String(res.statusCode)
      attempt.ms = performance.now() - attempt.t0
    })
    req.once('error', (err) => {
      if (attempt.outcome !== 'pending') return
      attempt.outcome = errorOutcome(err)
      attempt.ms = performance.now() - attempt.t0
    })
    req.once('close', () => {
      if (attempt.outcome !== 'pending') return
      attempt.outcome = 'closed without answer'
      attempt.ms = performance.now() - attempt.t0
    })
  }
  return req
}

function errorOutcome(err) {
  if (/did not establish a connection/.test(err.message)) return 'connect timeout'
  if (err.name === 'TimeoutError' && err.code === 'ETIMEDOUT') return 'request timeout'
  if (/socket timed out/.test(err.message)) return 'socket timeout'
  return `error ${err.code ?? err.name}`
}

/**
 * Parse the HTTP/1.1 responses a socket receives (Content-Length framing: the agent always sends
 * it) into pod.responses: { status, contentType, retryAfter, jsonCode }. A second 'data'
 * listener does not change how the http client reads the socket.
 */
function tapResponses(socket, pod) {
  let buf = Buffer.alloc(0)
  let unframed = false
  socket.on('data', (chunk) => {
    if (unframed) return
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    for (;;) {
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = buf.subarray(0, end).toString('latin1')
      const lines = head.split('\r\n')
      const status = Number(lines[0].slice(9, 12))
      const headers = {}
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':')
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
      }
      const length = Number(headers['content-length'] ?? NaN)
      if (!Number.isFinite(length)) {
        // Not framed by Content-Length: record what is known and stop parsing this socket.
        pod.responses.push({ status, contentType: headers['content-type'], unframed: true })
        unframed = true
        return
      }
      if (buf.length < end + 4 + length) return
      const body = buf.subarray(end + 4, end + 4 + length).toString('utf8')
      buf = buf.subarray(end + 4 + length)
      let jsonCode
      try {
        const parsed = JSON.parse(body)
        jsonCode = typeof parsed?.Code === 'string' ? parsed.Code : null
      } catch {
        jsonCode = undefined
      }
      pod.responses.push({
        status,
        contentType: headers['content-type'],
        retryAfter: headers['retry-after'],
        jsonCode,
        message: status >= 500 ? body.slice(0, 200) : undefined,
      })
    }
  })
}
