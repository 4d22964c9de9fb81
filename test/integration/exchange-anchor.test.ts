// The exchange anchor (src/server/exchange-anchor.ts) against real V8, in fresh node processes:
// a burst of requests, the connections closed, then full GCs at idle (what V8's memory reducer
// runs). Without anything holding a served request, V8 frees the hidden classes that the optimised
// code of Node's HTTP path embeds, and deoptimises that code ("embedded weak objects cleared" in
// --trace-deopt): the control, a bare node:http server. The agent keeps one exchange, and its hit
// path stays optimised through the same GCs.

import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MockEksAuth } from '../../src/mock/mock-eks-auth.js'
import type { TokenIssuer } from '../../src/mock/token-issuer.js'
import { keepAliveBurst } from '../helpers/burst.js'
import { NODE_KEY_ENV, startProcessMock } from '../helpers/harness.js'
import {
  MAIN,
  loopbackServerArgs,
  runNodeToFile,
  startedCredentialsUrl,
  until,
} from '../helpers/spawn.js'

/** Where the preload's GCs start in the trace (printed through V8, in order with its traces). */
const GC_MARK = 'ANCHOR-IDLE-GCS'

/**
 * Functions --trace-deopt reports deoptimised, during the idle GCs, because an object their
 * optimised code embedded weakly died.
 */
function lostInIdleGcs(trace: string): string[] {
  const after = trace.slice(trace.indexOf(GC_MARK))
  return [
    ...after.matchAll(
      /marking dependent code .*<SharedFunctionInfo ?([^>]*)>.*embedded weak objects cleared/g,
    ),
  ].map((m) => m[1]!.trim() || '(anonymous)')
}

/** How many functions --trace-opt reports compiled by TurboFan. */
function optimisedCount(trace: string): number {
  return trace.match(/\[completed (?:optimizing|compiling)/g)?.length ?? 0
}

const NODE_MAJOR = Number(process.versions.node.split('.')[0])

/**
 * Node's HTTP server code that the control loses in every run on Node 24.11, 24.21 and 26.10
 * (other names vary by version: IncomingMessage's constructor is inlined from 24.21 on).
 */
const NODE_HTTP_PATH = [
  'parserOnIncoming',
  'onParserExecute',
  'ServerResponse',
  'OutgoingMessage',
  'writeHead',
  '_storeHeader',
  'setStreamTimeout',
]
const V8_FLAGS = ['--expose-gc', '--allow-natives-syntax', '--trace-opt', '--trace-deopt']
// Loaded with -r: on SIGUSR2, the mark, then three full GCs that reduce memory (what V8's memory
// reducer runs at idle; a plain gc() keeps recently used hidden classes), then a marker on
// stderr. Node 20's V8 keeps those hidden classes even then: there the control shows nothing.
const GC_ON_SIGNAL = `process.on('SIGUSR2', () => {
  (async () => {
    %DebugPrint('${GC_MARK}')
    for (let i = 0; i < 3; i++) {
      gc({ type: 'major', execution: 'sync', flavor: 'last-resort' })
      await new Promise((r) => setTimeout(r, 50))
    }
    process._rawDebug('GCS-DONE')
  })()
})
`
const BARE_SERVER = `require('node:http')
  .createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' })
    res.end('{}')
  })
  .listen(0, '127.0.0.1', function () { console.log('LISTENING ' + this.address().port) })
`

let dir: string
let preload: string
let issuer: TokenIssuer
let mock: MockEksAuth
let mockUrl: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pia-anchor-'))
  preload = join(dir, 'gc-on-signal.cjs')
  await writeFile(preload, GC_ON_SIGNAL)
  ;({ mock, issuer, url: mockUrl } = await startProcessMock('anchor-cluster'))
})
afterAll(async () => {
  await mock.stop()
  await rm(dir, { recursive: true, force: true })
})

/**
 * 6000 requests over 8 keep-alive connections (each answer checked), the connections closed,
 * then the GCs. Resolves the process's V8 trace.
 */
async function burstThenIdleGcs(
  args: string[],
  urlFrom: (stdout: string) => string | undefined,
  headers: Record<string, string>,
): Promise<string> {
  let served = 0
  const done = await runNodeToFile(
    dir,
    [...V8_FLAGS, '-r', preload, ...args],
    { PATH: process.env.PATH, HOME: process.env.HOME, ...NODE_KEY_ENV },
    async (child, stdout, stderr) => {
      await until(() => urlFrom(stdout()) !== undefined, 'the server to listen')
      const url = urlFrom(stdout())!
      served = await keepAliveBurst(url, { connections: 8, perConnection: 750, headers })
      await new Promise((r) => setTimeout(r, 300)) // the server sees the connections close
      child.kill('SIGUSR2')
      await until(() => stderr().includes('GCS-DONE'), 'the GCs')
    },
  )
  expect(served).toBe(6000)
  return done.stdout
}

describe('full GCs at idle, after a burst', () => {
  it('control: a bare node:http server loses its optimised HTTP code (Node 22+)', async () => {
    const trace = await burstThenIdleGcs(
      ['-e', BARE_SERVER],
      (out) => {
        const port = /^LISTENING (\d+)$/m.exec(out)?.[1]
        return port === undefined ? undefined : `http://127.0.0.1:${port}/`
      },
      {},
    )
    expect(trace).toContain(GC_MARK)
    expect(optimisedCount(trace), trace.slice(-3000)).toBeGreaterThanOrEqual(20)
    const lost = lostInIdleGcs(trace)
    if (NODE_MAJOR >= 22) {
      expect(lost.length, lost.join(' ')).toBeGreaterThanOrEqual(15)
      const http = NODE_HTTP_PATH.filter((f) => lost.includes(f))
      expect(http.length, lost.join(' ')).toBeGreaterThanOrEqual(5)
    }
  }, 60_000)

  it('the agent keeps its hit path optimised', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    const trace = await burstThenIdleGcs(
      [MAIN, ...loopbackServerArgs('anchor-cluster', mockUrl)],
      startedCredentialsUrl,
      { authorization: token },
    )
    expect(trace).toContain(GC_MARK)
    expect(optimisedCount(trace), trace.slice(-3000)).toBeGreaterThanOrEqual(40)
    // Without the anchor (Node 24.11, 4 runs): 28 to 30 functions, Node's stream, event and
    // header code and the handler among them. With it, 1 to 4: code for objects no exchange
    // holds (socket write requests, iterators) and what inlines it (the handler, at times).
    const lost = lostInIdleGcs(trace)
    expect(lost.length, lost.join(' ')).toBeLessThanOrEqual(10)
    for (const f of [
      ...NODE_HTTP_PATH,
      'processHeader',
      'storeHeader',
      'updateOutgoingData',
      'setStreamTimeout',
      'Readable.on',
      'Readable.resume',
      'EventEmitter',
      'Stream',
    ]) {
      expect(lost, lost.join(' ')).not.toContain(f)
    }
  }, 60_000)
})
