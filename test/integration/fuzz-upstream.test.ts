// A seeded fuzz of EKS Auth's answers, through the real agent: a fake EKS Auth answers each pod's
// token in one of many broken ways (truncated or wrongly typed JSON, expired credentials, huge
// bodies, redirects, HTML, fuzzed error bodies, slow headers, slow bodies, resets, bytes that are
// no HTTP) or correctly. Each pod must get a precise answer within the agent's 3 s budget (the
// credentials, or the error its case calls for), and nothing but real credentials may be cached:
// the same token asked again costs a new call, unless it was served (a hit) or refused for good
// (a remembered refusal).

import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { EKS_AUTH_ERRORS } from '../../src/upstream/error-codes.js'
import type { Harness } from '../helpers/harness.js'
import { metricValue, rawGet, startHarness } from '../helpers/harness.js'
import { seededRandom } from '../helpers/seeded.js'

const SEED = Number(process.env.FUZZ_SEED ?? 20261207)
const CASES = 160

function successBody(expiration: number): Record<string, unknown> {
  return {
    subject: { namespace: 'default', serviceAccount: 'app' },
    audience: 'pods.eks.amazonaws.com',
    podIdentityAssociation: {
      associationArn: 'arn:aws:eks:us-west-2:111122223333:podidentityassociation/c/a-fuzz',
      associationId: 'a-fuzz',
    },
    assumedRoleUser: {
      arn: 'arn:aws:sts::111122223333:assumed-role/Fuzz/eks-c-pod-1',
      assumeRoleId: 'AROAFUZZ:eks-c-pod-1',
    },
    credentials: {
      accessKeyId: 'ASIAFUZZFUZZFUZZ0001',
      secretAccessKey: 'fuzzSecretKey/0123456789abcdefghijklmnopq',
      sessionToken: 'fuzzSessionToken0123456789',
      expiration,
    },
  }
}

/** Mutations that make a success body unusable, each for sure. */
const BREAKS: ((b: Record<string, unknown>) => unknown)[] = [
  (b) => ({ ...b, credentials: undefined }),
  (b) => ({ ...b, credentials: [] }),
  (b) => ({ ...b, credentials: { ...(b.credentials as object), accessKeyId: 42 } }),
  (b) => ({ ...b, credentials: { ...(b.credentials as object), secretAccessKey: null } }),
  (b) => ({ ...b, credentials: { ...(b.credentials as object), sessionToken: {} } }),
  (b) => ({ ...b, credentials: { ...(b.credentials as object), expiration: 'tomorrow' } }),
  (b) => ({ ...b, credentials: { ...(b.credentials as object), expiration: null } }),
  (b) => ({ ...b, assumedRoleUser: 'someone' }),
  (b) => ({ ...b, assumedRoleUser: { arn: 'not-an-arn' } }),
  () => [],
  () => 'credentials',
  () => 42,
  () => null,
]

type Case = (req: IncomingMessage, res: ServerResponse) => void

interface Expected {
  /** The agent's answers that are right for this case: status and JSON Code. */
  answers: [number, string | RegExp][]
}

/** The fake EKS Auth's cases: how it answers, and what a pod must then be told. */
function cases(rand: () => number): { name: string; answer: Case; expected: Expected }[] {
  const int = (n: number) => Math.floor(rand() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T
  const hour = () => Date.now() / 1000 + 3600
  const invalid: Expected = { answers: [[502, 'InvalidUpstreamResponse']] }
  const json = (res: ServerResponse, status: number, body: string, headers = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(body)
  }
  const errorBody = (): string =>
    pick([
      JSON.stringify({ __type: pick(Object.keys(EKS_AUTH_ERRORS)), message: 'fuzzed' }),
      JSON.stringify({ __type: `com.amazonaws.eksauth#${'Z'.repeat(int(300))}`, message: 7 }),
      JSON.stringify({ code: 'Weird:Code#Nested', Message: ['x'] }),
      '<html><body>Bad Gateway</body></html>',
      '',
      '{"__type":',
      JSON.stringify({ message: 'x'.repeat(int(100_000)) }),
    ])
  return [
    {
      name: 'valid',
      answer: (_q, res) => json(res, 200, JSON.stringify(successBody(hour()))),
      expected: { answers: [[200, '']] },
    },
    {
      name: 'truncated JSON',
      answer: (_q, res) => {
        const text = JSON.stringify(successBody(hour()))
        json(res, 200, text.slice(0, int(text.length - 1)))
      },
      expected: invalid,
    },
    {
      name: 'wrong types',
      answer: (_q, res) => json(res, 200, JSON.stringify(pick(BREAKS)(successBody(hour())))),
      expected: invalid,
    },
    {
      name: 'expired credentials',
      answer: (_q, res) =>
        json(res, 200, JSON.stringify(successBody(Date.now() / 1000 - int(100)))),
      expected: invalid,
    },
    {
      name: 'huge body',
      answer: (_q, res) => json(res, 200, `{"pad":"${'p'.repeat(2_000_000 + int(2_000_000))}"}`),
      expected: invalid,
    },
    {
      name: 'huge chunked body',
      answer: (_q, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        for (let i = 0; i < 40; i++) res.write('x'.repeat(100_000))
        res.end()
      },
      expected: invalid,
    },
    {
      name: 'redirect',
      answer: (_q, res) => {
        res.writeHead(pick([301, 302, 303, 307, 308]), { location: 'http://169.254.169.254/' })
        res.end()
      },
      expected: invalid,
    },
    {
      name: 'HTML 200',
      answer: (_q, res) => {
        res.writeHead(200, { 'content-type': 'text/html' })
        res.end('<html>hello</html>')
      },
      expected: invalid,
    },
    {
      name: 'fuzzed 4xx',
      answer: (_q, res) => json(res, pick([400, 403, 404, 409, 413, 418]), errorBody()),
      expected: {
        answers: [
          [400, /./],
          [403, /./],
          [404, /./],
          [409, /./],
          [413, /./],
          [418, /./],
        ],
      },
    },
    {
      name: 'fuzzed 5xx',
      answer: (_q, res) => json(res, pick([500, 502, 503, 504]), errorBody()),
      expected: {
        answers: [
          [500, /./],
          [502, /./],
          [503, /./],
          [504, /./],
        ],
      },
    },
    {
      name: 'slow headers',
      answer: (_q, res) => {
        setTimeout(() => json(res, 200, JSON.stringify(successBody(hour()))), 4000).unref()
      },
      expected: { answers: [[504, 'UpstreamTimeout']] },
    },
    {
      name: 'slow body',
      answer: (_q, res) => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.write('{"subject":')
        setTimeout(() => res.end('{}}'), 4000).unref()
      },
      expected: { answers: [[504, 'UpstreamTimeout']] },
    },
    {
      name: 'reset mid-body',
      answer: (_q, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '5000' })
        res.write('{"subject":{')
        setTimeout(() => res.socket?.destroy(), 5).unref()
      },
      expected: { answers: [[502, 'UpstreamUnreachable']] },
    },
    {
      name: 'no HTTP',
      answer: (q) => {
        q.socket.end(`${'\u0000\u00ff junk '.repeat(1 + int(20))}\r\n\r\n`)
      },
      expected: { answers: [[502, 'UpstreamUnreachable']] },
    },
  ]
}

describe(`EKS Auth answers fuzzed (seed ${SEED})`, () => {
  let h: Harness
  let upstream: Server
  /** Each token's case, and the calls made for it. */
  const caseOf = new Map<string, number>()
  const calls = new Map<string, number>()
  let all: ReturnType<typeof cases>

  beforeAll(async () => {
    all = cases(seededRandom(SEED))
    upstream = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const { token } = JSON.parse(Buffer.concat(chunks).toString()) as { token: string }
        calls.set(token, (calls.get(token) ?? 0) + 1)
        all[caseOf.get(token) ?? 0]?.answer(req, res)
      })
    })
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
    const port = (upstream.address() as AddressInfo).port
    h = await startHarness({
      startMock: false,
      config: { endpoint: `http://127.0.0.1:${port}`, clientMissRate: 0, verbosity: 'info' },
    })
  })
  afterAll(async () => {
    await h.close()
    upstream.closeAllConnections()
    await new Promise((r) => upstream.close(r))
  })

  it(`${CASES} pods each get the answer their case calls for, in time, and only credentials are cached`, async () => {
    const rand = seededRandom(SEED + 1)
    const problems: string[] = []
    const seen: Record<string, number> = {}
    const one = async (i: number): Promise<void> => {
      const index = Math.floor(rand() * all.length)
      const c = all[index]!
      seen[c.name] = (seen[c.name] ?? 0) + 1
      const token = await h.mint({ podName: `fuzz-${i}` })
      caseOf.set(token, index)
      const ask = () => rawGet(h.url, { host: `127.0.0.1:${h.port}`, authorization: token })
      const t0 = performance.now()
      const first = await ask()
      const ms = performance.now() - t0
      if (ms > 5000) problems.push(`${c.name}: answered after ${Math.round(ms)} ms`)
      let code = ''
      if (first.status !== 200) {
        const body = JSON.parse(first.body) as { Code?: unknown; Message?: unknown }
        if (typeof body.Code !== 'string' || typeof body.Message !== 'string') {
          problems.push(`${c.name}: ${first.status} ${first.body.slice(0, 100)}`)
          return
        }
        code = body.Code
        if (code === 'InternalError') problems.push(`${c.name}: the agent's own 500`)
        if (!/^[A-Za-z0-9_.-]{1,128}$/.test(code))
          problems.push(`${c.name}: Code ${JSON.stringify(code.slice(0, 80))}`)
        if (body.Message.length > 2048)
          problems.push(`${c.name}: a ${body.Message.length}-character Message`)
      }
      const right = c.expected.answers.some(
        ([status, want]) =>
          status === first.status &&
          (typeof want === 'string' ? want === code || want === '' : want.test(code)),
      )
      if (!right) problems.push(`${c.name}: ${first.status} ${code}`)
      // Asked again: a hit, a remembered refusal, or a new call; never a cached bad answer.
      const before = calls.get(token) ?? 0
      const again = await ask()
      const after = calls.get(token) ?? 0
      const refusedForGood =
        first.status < 500 &&
        (EKS_AUTH_ERRORS as Record<string, { irrecoverable: boolean } | undefined>)[code]
          ?.irrecoverable === true
      if (first.status === 200 || refusedForGood) {
        if (after !== before || again.status !== first.status)
          problems.push(`${c.name}: asked again, ${again.status} after ${after - before} calls`)
      } else if (after === before) {
        problems.push(
          `${c.name}: asked again, answered ${again.status} without a call (first ${first.status} ${code}, calls ${before}; again ${again.body.slice(0, 150)})`,
        )
      }
    }
    const queue = Array.from({ length: CASES }, (_, i) => i)
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = queue.shift(); i !== undefined; i = queue.shift()) await one(i)
      }),
    )
    expect(problems.slice(0, 10)).toEqual([])
    expect(Object.keys(seen).length).toBe(all.length) // every case was tried
    const text = await h.metricsText()
    expect(metricValue(text, 'pod_identity_cache_entries')).toBe(seen.valid)
  }, 120_000)
})
