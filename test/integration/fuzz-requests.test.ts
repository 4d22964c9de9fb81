// A seeded fuzz of the credential endpoint, as a hostile pod would try it, over raw sockets:
// requests random and mutated from valid ones (method, path, version, Host, Authorization, other
// headers, bodies, framing, bytes no client sends). Every answer must be well-formed HTTP with the
// agent's JSON error (a known Code) or real credentials; the agent must never crash, hang, answer
// 500, or cache what EKS Auth did not issue. Two phases:
// - 10,000 requests with every kind of mutation, each written on a new connection that is then
//   half-closed, so that an incomplete request is answered at once instead of at its timeout. A
//   half-closed connection is ended by Node at once, so an answer still to come (an upstream call)
//   is dropped: those are counted, and must stay few.
// - 2,000 whole requests (no framing or byte mutations) on connections kept open: every one must
//   be answered, within seconds.
// The seed is fixed (FUZZ_SEED overrides it), so a failure can be replayed.

import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AGENT_ERROR_CODES } from '../../src/errors.js'
import { EKS_AUTH_ERROR_CODES } from '../../src/upstream/error-codes.js'
import type { Harness } from '../helpers/harness.js'
import { metricValue, startHarness } from '../helpers/harness.js'
import { seededRandom } from '../helpers/seeded.js'

const SEED = Number(process.env.FUZZ_SEED ?? 20261207)
const REQUESTS = 10_000
const CONCURRENCY = 16
const KNOWN_CODES = new Set<string>([...AGENT_ERROR_CODES, ...EKS_AUTH_ERROR_CODES])

interface Answer {
  /** Each response read, in order. */
  responses: { status: number; headers: Record<string, string>; body: string }[]
  /** Bytes that do not parse as HTTP responses (must be none). */
  garbage: string
}

/**
 * Write `bytes` on a new connection from `from` and read until the agent closes: half-closed at
 * once, or (halfClose false) closed by this side once one whole answer has arrived.
 */
function exchange(port: number, bytes: Buffer, from: string, halfClose = true): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const s = connect({ host: '127.0.0.1', port, localAddress: from }, () =>
      halfClose ? s.end(bytes) : s.write(bytes),
    )
    s.on('data', (c: Buffer) => {
      chunks.push(c)
      if (halfClose) return
      const text = Buffer.concat(chunks).toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? 0)
      const head = bytes.toString('latin1').startsWith('HEAD ')
      if (
        end !== -1 &&
        !text.startsWith('HTTP/1.1 100') &&
        text.length >= end + 4 + (head ? 0 : length)
      )
        s.end()
    })
    s.on('error', () => {}) // a reset after the answers is read like a close
    const timer = setTimeout(() => {
      s.destroy()
      reject(
        new Error(
          `no close within 15 s for ${JSON.stringify(bytes.toString('latin1').slice(0, 300))}`,
        ),
      )
    }, 15_000)
    s.on('close', () => {
      clearTimeout(timer)
      const head = bytes.toString('latin1').startsWith('HEAD ')
      resolve(parseResponses(Buffer.concat(chunks).toString('latin1'), head))
    })
  })
}

/**
 * Responses one after another. Those to a HEAD request carry no body whatever their length says,
 * but for a refusal that closes the connection (a request too malformed to trust its method).
 */
function parseResponses(text: string, head: boolean): Answer {
  const responses: Answer['responses'] = []
  let rest = text
  while (rest.length > 0) {
    const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n/.exec(rest)
    if (m === null) break
    const headers: Record<string, string> = {}
    for (const line of (m[2] as string).split('\r\n').filter(Boolean)) {
      const i = line.indexOf(':')
      headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim()
    }
    const bodiless = head && headers.connection !== 'close'
    const length = bodiless ? 0 : Number(headers['content-length'] ?? 0)
    const start = (m[0] as string).length
    responses.push({ status: Number(m[1]), headers, body: rest.slice(start, start + length) })
    rest = rest.slice(start + length)
  }
  return { responses, garbage: rest }
}

/**
 * The fuzzer: valid requests, then one to three mutations of their parts or bytes; `whole`: only
 * of header values, method and path, so that every request stays complete and answerable.
 */
function fuzzer(rand: () => number, port: number, tokens: string[], whole = false) {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T
  const int = (n: number): number => Math.floor(rand() * n)
  const junk = (n: number): string =>
    Array.from({ length: n }, () => String.fromCharCode(int(256))).join('')
  const printable = (n: number): string =>
    Array.from({ length: n }, () => String.fromCharCode(32 + int(95))).join('')

  const methods = [
    'GET',
    'HEAD',
    'POST',
    'PUT',
    'DELETE',
    'OPTIONS',
    'CONNECT',
    'TRACE',
    'PATCH',
    'get',
    'G E T',
    'GET\0',
    '',
  ]
  const paths = [
    '/v1/credentials',
    '/v1/credentials?x=1',
    '//v1/credentials',
    '/',
    '/v1/credentials/',
    '/v1/credentials#a',
    '/V1/CREDENTIALS',
    '*',
    'http://169.254.170.23/v1/credentials',
    '/v1/credentials%00',
    `/${'a'.repeat(5000)}`,
  ]
  const versions = [
    'HTTP/1.1',
    'HTTP/1.0',
    'HTTP/2.0',
    'HTTP/0.9',
    'HTTP/1.1 ',
    'http/1.1',
    'HTTP/9.9',
    '',
  ]
  const hosts = [
    `127.0.0.1:${port}`,
    '127.0.0.1',
    '169.254.170.23',
    'evil.com',
    '',
    '[::1]',
    '127.0.0.1:99999',
    `127.0.0.1:${port}, evil.com`,
    'xn--nxasmq6b',
    printable(30),
  ]

  function mutateToken(t: string): string {
    switch (int(10)) {
      case 0:
        return t.slice(0, int(t.length))
      case 1: {
        const i = int(t.length)
        return t.slice(0, i) + String.fromCharCode(33 + int(94)) + t.slice(i + 1)
      }
      case 2:
        return `${t}.${t}`
      case 3:
        return t.split('.').reverse().join('.')
      case 4:
        return `Bearer ${t}`
      case 5:
        return t + printable(int(50))
      case 6:
        return `${Buffer.from(printable(int(80))).toString('base64url')}.${Buffer.from(JSON.stringify({ exp: rand() > 0.5 ? 'soon' : int(2e9), sub: int(10) })).toString('base64url')}.c2ln`
      case 7:
        return 'x'.repeat(int(20_000))
      case 8:
        return junk(int(40))
      default:
        return t.replace(/\./g, '')
    }
  }

  return function next(): Buffer {
    const token = pick(tokens)
    let method = 'GET'
    let path = '/v1/credentials'
    let version = 'HTTP/1.1'
    let headers: [string, string][] = [
      ['Host', `127.0.0.1:${port}`],
      ['Authorization', token],
    ]
    let body = ''
    for (let m = 1 + int(3); m > 0; m--) {
      switch (whole ? pick([0, 1, 3, 4, 9]) : int(12)) {
        case 0:
          method = pick(methods)
          break
        case 1:
          path = pick(paths)
          break
        case 2:
          version = pick(versions)
          break
        case 3:
          headers = headers.map(([k, v]) => (k === 'Host' ? [k, pick(hosts)] : [k, v]))
          break
        case 4:
          headers = headers.map(([k, v]) => (k === 'Authorization' ? [k, mutateToken(v)] : [k, v]))
          break
        case 5:
          headers = headers.filter(() => rand() > 0.5)
          break
        case 6:
          headers.push([
            pick([
              'Host',
              'Authorization',
              'X-Forwarded-For',
              'Forwarded',
              'Transfer-Encoding',
              'Content-Length',
              'Connection',
              'Expect',
              printable(10),
            ]),
            pick([
              printable(int(40)),
              '',
              'chunked',
              '100-continue',
              'close',
              '-1',
              '99999999999',
              junk(5),
            ]),
          ])
          break
        case 7:
          body =
            rand() > 0.5
              ? printable(int(3000))
              : `${int(999).toString(16)};${'x'.repeat(int(20_000))}\r\n${printable(5)}\r\n0\r\n\r\n`
          break
        case 8:
          headers.push([`X-${printable(8).replace(/[^A-Za-z0-9]/g, 'a')}`, 'v'.repeat(int(20_000))])
          break
        default:
          break
      }
    }
    let text = `${method} ${path} ${version}\r\n${headers.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${body}`
    // Byte-level mutations: truncation, a flipped byte, a bare LF, a pipelined second request.
    switch (whole ? -1 : int(8)) {
      case 0:
        text = text.slice(0, int(text.length))
        break
      case 1: {
        const i = int(text.length)
        text = text.slice(0, i) + String.fromCharCode(int(256)) + text.slice(i + 1)
        break
      }
      case 2:
        text = text.replace(/\r\n/, '\n')
        break
      case 3:
        text += text
        break
      default:
        break
    }
    return Buffer.from(text, 'latin1')
  }
}

describe(`fuzzed requests (seed ${SEED})`, () => {
  let h: Harness
  let tokens: string[]
  beforeAll(async () => {
    h = await startHarness({ config: { verbosity: 'info' } })
    tokens = await Promise.all([1, 2, 3].map((i) => h.mint({ podName: `fuzz-${i}` })))
  })
  afterAll(async () => {
    await h.close()
  })

  /** Checks of one answer; what is wrong, for the failure message. */
  function check(a: Answer, bytes: Buffer, statuses: Record<number, number>, problems: string[]) {
    const shown = JSON.stringify(bytes.toString('latin1').slice(0, 200))
    if (a.garbage !== '')
      problems.push(
        `not HTTP after the answers (${JSON.stringify(a.garbage.slice(0, 80))}) for ${shown}`,
      )
    for (const r of a.responses) {
      statuses[r.status] = (statuses[r.status] ?? 0) + 1
      if (r.status === 100) continue // the interim answer to Expect: 100-continue
      if (r.status === 200) {
        if (r.body === '') continue // HEAD
        const creds = JSON.parse(r.body) as Record<string, unknown>
        if (Object.keys(creds).join() !== 'AccessKeyId,SecretAccessKey,Token,AccountId,Expiration')
          problems.push(`200 without credentials for ${shown}`)
        continue
      }
      if (r.status >= 500 && r.status !== 503) problems.push(`${r.status} for ${shown}`)
      if (r.headers['content-type'] !== 'application/json') {
        problems.push(`${r.status} without a JSON body for ${shown}`)
        continue
      }
      if (r.body === '') continue // HEAD
      const body = JSON.parse(r.body) as { Code?: unknown; Message?: unknown }
      if (
        typeof body.Code !== 'string' ||
        !KNOWN_CODES.has(body.Code) ||
        typeof body.Message !== 'string'
      )
        problems.push(`${r.status} ${r.body.slice(0, 120)} for ${shown}`)
    }
  }

  /** `count` requests from `next`, CONCURRENCY at a time, each from one of 200 addresses per worker. */
  async function run(count: number, next: () => Buffer, halfClose: boolean) {
    const statuses: Record<number, number> = {}
    const problems: string[] = []
    let sent = 0
    let unanswered = 0
    const worker = async (w: number): Promise<void> => {
      while (sent < count) {
        sent++
        const bytes = next()
        const a = await exchange(h.port, bytes, `127.0.${w}.${1 + (sent % 200)}`, halfClose)
        if (a.responses.length === 0) unanswered++
        check(a, bytes, statuses, problems)
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)))
    return { statuses, problems, unanswered }
  }

  it('answers each of 10,000 with well-formed HTTP: credentials, or a JSON error with a known code; never a 500, a crash or a hang', async () => {
    const { statuses, problems, unanswered } = await run(
      REQUESTS,
      fuzzer(seededRandom(SEED), h.port, tokens),
      true,
    )
    expect(problems.slice(0, 10)).toEqual([])
    expect(unanswered).toBeLessThan(REQUESTS / 20)
    expect(statuses[200]).toBeGreaterThan(100)
    expect(Object.keys(statuses).length).toBeGreaterThan(6)
  }, 120_000)

  it('answers every one of 2,000 whole requests with mutated values on an open connection', async () => {
    const { statuses, problems, unanswered } = await run(
      2000,
      fuzzer(seededRandom(SEED + 1), h.port, tokens, true),
      false,
    )
    expect(problems.slice(0, 10)).toEqual([])
    expect(unanswered).toBe(0)
    expect(Object.keys(statuses).length).toBeGreaterThan(4)
  }, 120_000)

  it('still serves pods, and caches only what EKS Auth issued', async () => {
    const creds = await h.sdkFetch(await h.tokenFile(tokens[0] as string))
    expect(creds.accessKeyId).toMatch(/^ASIA/)
    const text = await h.metricsText()
    // Every entry is credentials EKS Auth issued. That can be for a mutated token: a changed last
    // character of the signature may decode to the same bytes (base64url's unused bits), and
    // then the signature still verifies.
    const entries = metricValue(text, 'pod_identity_cache_entries') ?? NaN
    expect(entries).toBeGreaterThanOrEqual(1)
    expect(entries).toBeLessThanOrEqual(h.mock.stats.byOutcome.success ?? 0)
    expect(metricValue(text, 'pod_identity_http_response{code="500"}') ?? 0).toBe(0)
  })
})
