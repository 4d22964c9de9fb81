// Requests Node's HTTP parser refuses before any handler runs (malformed, oversized headers, too
// slow) and HTTP/1.1 requests without Host: the credential listener answers each with the JSON
// error every other refusal gets, counts it, closes the connection, and keeps serving pods.
// Raw sockets: no SDK sends these.

import { connect, createServer } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { Duplex } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sendClientError } from '../../src/server/respond.js'
import type { Harness } from '../helpers/harness.js'
import { metricValue, startHarness } from '../helpers/harness.js'

interface RawAnswer {
  status: number
  headers: Record<string, string>
  body: string
  /** The agent closed the connection after its answer. */
  closed: boolean
}

/** Writes `bytes`, reads until the peer closes (or `waitMs` pass), parses one HTTP response. */
function rawExchange(port: number, bytes: string | Buffer, waitMs = 3000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let closed = false
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes))
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {}) // a reset after the answer is read like a close
    const timer = setTimeout(() => socket.destroy(), waitMs)
    socket.on('close', () => {
      clearTimeout(timer)
      closed = true
      const text = Buffer.concat(chunks).toString('latin1')
      const split = text.indexOf('\r\n\r\n')
      if (split === -1) {
        reject(new Error(`no HTTP answer: ${JSON.stringify(text.slice(0, 200))}`))
        return
      }
      const [statusLine, ...lines] = text.slice(0, split).split('\r\n')
      const headers: Record<string, string> = {}
      for (const l of lines) {
        const i = l.indexOf(':')
        headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim()
      }
      resolve({
        status: Number(statusLine?.split(' ')[1]),
        headers,
        body: text.slice(split + 4),
        closed,
      })
    })
  })
}

function expectJsonError(a: RawAnswer, status: number, code: string): { Message: string } {
  expect(a.status).toBe(status)
  expect(a.headers['content-type']).toBe('application/json')
  expect(Number(a.headers['content-length'])).toBe(Buffer.byteLength(a.body))
  const body = JSON.parse(a.body) as { Code: string; Message: string }
  expect(Object.keys(body)).toEqual(['Code', 'Message'])
  expect(body.Code).toBe(code)
  return body
}

describe('requests Node refuses, and HTTP/1.1 without Host, on a credential listener', () => {
  let h: Harness
  let token: string
  beforeAll(async () => {
    h = await startHarness()
    token = await h.mint()
  })
  afterAll(async () => {
    await h.close()
  })

  it('a lowercase method -> 400 BadRequest as JSON, connection closed', async () => {
    const a = await rawExchange(h.port, 'get /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    const body = expectJsonError(a, 400, 'BadRequest')
    expect(body.Message).toMatch(/^Malformed HTTP request: [A-Za-z]/)
    expect(a.headers.connection).toBe('close')
    expect(a.closed).toBe(true)
  })

  it('a control character in a header value -> 400 BadRequest, and the token is not quoted', async () => {
    const a = await rawExchange(
      h.port,
      `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${token}\r\nX-Bad: a\x01b\r\n\r\n`,
    )
    expectJsonError(a, 400, 'BadRequest')
    expect(a.body).not.toContain(token.slice(0, 20))
  })

  it('a header block over 16 KiB -> 431 RequestHeaderFieldsTooLarge as JSON', async () => {
    const a = await rawExchange(
      h.port,
      `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    )
    const body = expectJsonError(a, 431, 'RequestHeaderFieldsTooLarge')
    expect(body.Message).toBe('Request header fields too large: the limit is 16384 bytes')
  })

  it('HTTP/1.1 without Host -> 400 BadRequest, on the credential path and any other', async () => {
    for (const path of ['/v1/credentials', '/elsewhere']) {
      const a = await rawExchange(
        h.port,
        `GET ${path} HTTP/1.1\r\nAuthorization: ${token}\r\nConnection: close\r\n\r\n`,
      )
      const body = expectJsonError(a, 400, 'BadRequest')
      expect(body.Message).toBe('Missing required Host header (HTTP/1.1 requests must carry one)')
    }
  })

  it('two Host headers -> 400 BadRequest, whichever comes first', async () => {
    for (const [first, second] of [
      ['127.0.0.1', 'evil.com'],
      ['evil.com', '127.0.0.1'],
    ]) {
      const a = await rawExchange(
        h.port,
        `GET /v1/credentials HTTP/1.1\r\nHost: ${first}\r\nhost: ${second}\r\nAuthorization: ${token}\r\nConnection: close\r\n\r\n`,
      )
      const body = expectJsonError(a, 400, 'BadRequest')
      expect(body.Message).toBe('More than one Host header: a request must name one address')
    }
  })

  it('HTTP/1.1 with an empty Host, and HTTP/1.0 without Host -> 403 AccessDenied (not a bind host)', async () => {
    const empty = await rawExchange(
      h.port,
      `GET /v1/credentials HTTP/1.1\r\nHost: \r\nAuthorization: ${token}\r\nConnection: close\r\n\r\n`,
    )
    expectJsonError(empty, 403, 'AccessDenied')
    const old = await rawExchange(
      h.port,
      `GET /v1/credentials HTTP/1.0\r\nAuthorization: ${token}\r\n\r\n`,
    )
    expectJsonError(old, 403, 'AccessDenied')
  })

  it('CONNECT -> 405 MethodNotAllowed as JSON with Allow, connection closed', async () => {
    const a = await rawExchange(
      h.port,
      `CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: 169.254.169.254:80\r\n\r\n`,
    )
    const body = expectJsonError(a, 405, 'MethodNotAllowed')
    expect(body.Message).toBe('Method not allowed: use GET /v1/credentials')
    expect(a.headers.allow).toBe('GET, HEAD')
    expect(a.headers.connection).toBe('close')
    expect(a.closed).toBe(true)
  })

  it('headers still incomplete 10 s after connecting -> 408 RequestTimeout within about a second of that, then closed', async () => {
    const started = performance.now()
    const a = await rawExchange(
      h.port,
      'GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\n',
      15_000,
    )
    const elapsed = performance.now() - started
    expectJsonError(a, 408, 'RequestTimeout')
    expect(a.closed).toBe(true)
    expect(elapsed).toBeGreaterThanOrEqual(9_900)
    expect(elapsed).toBeLessThan(12_500) // the timeout, plus one 1 s check, plus slack
  }, 20_000)

  it('chunk extensions over the limit: 413 PayloadTooLarge while the request is unanswered; a request already answered (a hit) only has its connection closed', async () => {
    const chunked = (t: string) =>
      `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${t}\r\nTransfer-Encoding: chunked\r\n\r\n1;${'x'.repeat(20_000)}\r\na\r\n0\r\n\r\n`
    const fresh = await rawExchange(h.port, chunked(await h.mint({ podName: 'chunky' })))
    const body = expectJsonError(fresh, 413, 'PayloadTooLarge')
    expect(body.Message).toBe('Chunk extensions too large')
    expect(fresh.closed).toBe(true)
    await h.sdkFetch(await h.tokenFile(token)) // cached: the hit is answered as its headers arrive
    const answered = await rawExchange(h.port, chunked(token))
    expect(answered.status).toBe(200)
    expect(answered.closed).toBe(true)
    expect(answered.body.match(/HTTP\/1\.1/g)).toBeNull() // one answer only
  })

  it('counts every refusal in pod_identity_http_response, and pods are still served', async () => {
    const before = await h.metricsText()
    await rawExchange(h.port, 'get / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    await rawExchange(
      h.port,
      `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: ${'b'.repeat(17_000)}\r\n\r\n`,
    )
    const after = await h.metricsText()
    const count = (text: string, code: number) =>
      metricValue(text, `pod_identity_http_response{code="${code}"}`) ?? 0
    expect(count(after, 400) - count(before, 400)).toBe(1)
    expect(count(after, 431) - count(before, 431)).toBe(1)
    const connect = await rawExchange(h.port, 'CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n')
    expect(connect.status).toBe(405)
    expect(count(await h.metricsText(), 405) - count(after, 405)).toBe(1)
    const creds = await h.sdkFetch(await h.tokenFile(token))
    expect(creds.accessKeyId).toMatch(/^ASIA/)
  })
})

describe('sendClientError', () => {
  it('a request timeout -> 408 RequestTimeout as JSON over a real socket, then closed', async () => {
    const server = createServer((socket) => {
      const err = Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' })
      expect(sendClientError(socket, err, 16384)).toBe(408)
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const a = await rawExchange((server.address() as AddressInfo).port, '')
      const body = expectJsonError(a, 408, 'RequestTimeout')
      expect(body.Message).toBe('Request not received in time: the connection is closed')
      expect(a.closed).toBe(true)
    } finally {
      await new Promise((r) => server.close(r))
    }
  })

  it('writes nothing when the peer reset the connection or a response has begun', () => {
    const written: Buffer[] = []
    const sink = () =>
      new Duplex({
        read() {},
        write(chunk: Buffer, _enc, cb) {
          written.push(chunk)
          cb()
        },
      })
    const reset = sink()
    const err = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })
    expect(sendClientError(reset, err, 16384)).toBeUndefined()
    expect(reset.destroyed).toBe(true)
    const begun = Object.assign(sink(), { _httpMessage: { headersSent: true } }) as Duplex
    const parse = Object.assign(new Error('Parse Error'), { code: 'HPE_INVALID_METHOD' })
    expect(sendClientError(begun as unknown as Socket, parse, 16384)).toBeUndefined()
    expect(begun.destroyed).toBe(true)
    expect(written).toEqual([])
  })
})
