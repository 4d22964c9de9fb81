// Cache micro-benchmark: what the credential cache (src/cache/credential-cache.ts) costs per
// operation, in one process and without HTTP. The cache gets a source that answers at once, a
// ManualClock (time moves only when told), its metrics on a fresh prom-client registry, and a
// pino logger at 'warn' writing to a stream that drops everything (the agent's default is
// 'info', which logs each fetch: left out, since it is the logger's cost, not the cache's).
// Requests are ~1 KB RS256-shaped pod tokens: one minted with TokenIssuer, the others made from
// it with their own pod name, pod uid, jti and a random 256-byte signature (parseToken never
// checks signatures), so they differ in their last characters as real tokens do.
//
// Measured, in ns per operation (median of rounds, interleaved, after warm-up rounds):
// - hit: lookup() of 2000 cached tokens in turn, next to a plain Map.get() of the same strings
//   (the baseline: what the cache adds over one Map lookup); then both again with a fresh copy
//   of the token for each lookup, as a request brings (Map.get must hash it, lookup() need not);
// - miss: resolve() of a new token, awaited one after another (into an empty cache, no eviction);
// - coalesced miss: 100 concurrent resolve() of one new token (each its own copy), per request;
// - renewal sweep: 2000 entries past their renewal time, one lookup() each, which starts their
//   background renewals (refreshQps 1e9: none is rate limited), until all have landed, per entry.
// And bytes per entry: V8 heap used after a full GC, empty cache vs 2000 entries (and the
// off-heap bytes: each entry's body is a Buffer with its own memory).
//
// Everything runs in child processes started with `node --expose-gc` (full GCs between
// measurements and for the memory figure, in a heap the parent's fixtures do not share), each
// printing its raw figures as JSON: one for the times, one for the bytes per entry. The memory
// child runs without the optimising compilers (--no-opt --no-maglev): how an entry is laid out
// does not depend on them, but with them the heap delta moved by +-5 % from round to round (code,
// deoptimisations), and now and then by a whole cache (an earlier round's cache, garbage, still
// counted in the first reading); interpreted rounds mostly agree within 0.1 %.
// Usage: node bench/run.js cache (after npm run build), or npm run bench:cache.

import { randomBytes, randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { exitOf, spawnTracked } from './lib/procs.js'
import { ROOT } from './lib/servers.js'
import { fmt, median, printTable, writeResults } from './lib/report.js'

const SELF = fileURLToPath(import.meta.url)
const dist = (p) => join(ROOT, 'dist', p)

/** Entries in the cache for the hit, sweep and memory figures (the agent's default size). */
const ENTRIES = 2000
/** Concurrent requests for one new token in the coalesced miss. */
const COALESCE = 100
const HOUR_MS = 3_600_000

// ---------------------------------------------------------------------------------------------
// Parent: run the two children, print their figures, return report-only target rows.

/** Run this file as a child (`--child time|memory`) with node flags; resolves its JSON. */
async function runChild(mode, nodeFlags, full) {
  const child = spawnTracked(process.execPath, [...nodeFlags, SELF, '--child', mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, BENCH_FULL: full ? '1' : '0' },
  })
  let out = ''
  child.stdout.on('data', (c) => (out += c))
  const { code, signal } = await exitOf(child)
  if (code !== 0) throw new Error(`cache benchmark child (${mode}) exited with ${code ?? signal}`)
  return JSON.parse(out)
}

export async function cacheMicro({ full }) {
  // One after the other: on 2 cores, the memory child would slow the timed rounds.
  const timed = await runChild('time', ['--expose-gc'], full)
  const sized = await runChild('memory', ['--expose-gc', '--no-opt', '--no-maglev'], full)
  const raw = { ...timed, memory: sized.memory, memoryWarmupRounds: sized.warmupRounds }
  const { rounds, memory } = raw

  // Per-round figures; the hit/Map ratio is taken per round (same round, same machine state).
  const series = {
    map: rounds.map((r) => r.mapNs),
    hit: rounds.map((r) => r.hitNs),
    ratio: rounds.map((r) => r.hitNs / r.mapNs),
    freshMap: rounds.map((r) => r.freshMapNs),
    freshHit: rounds.map((r) => r.freshHitNs),
    freshRatio: rounds.map((r) => r.freshHitNs / r.freshMapNs),
    miss: rounds.map((r) => r.missNs),
    coalesced: rounds.map((r) => r.coalescedNs),
    sweep: rounds.map((r) => r.sweepNs),
    heap: memory.map((m) => m.heapBytes / m.entries),
    offHeap: memory.map((m) => m.arrayBufferBytes / m.entries),
  }
  const med = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, median(v)]))
  const range = (k, digits = 0) =>
    `${fmt(Math.min(...series[k]), digits)}-${fmt(Math.max(...series[k]), digits)}`
  const { ops } = raw
  console.log(
    `\ncache: ${rounds.length} rounds (after ${raw.warmupRounds} warm-up), ` +
      `${memory.length} memory rounds; token ${raw.tokenLength} chars; node ${raw.node}`,
  )
  printTable(
    'Credential cache, in process (median of rounds)',
    ['operation', 'median', 'min-max', 'unit', 'ops per round'],
    [
      ['Map.get(token), baseline', fmt(med.map), range('map'), 'ns/op', fmt(ops.hit)],
      ['hit: lookup(token, now)', fmt(med.hit), range('hit'), 'ns/op', fmt(ops.hit)],
      ['hit / Map.get', fmt(med.ratio, 2), range('ratio', 2), 'ratio', ''],
      [
        'Map.get(fresh copy of token), baseline',
        fmt(med.freshMap),
        range('freshMap'),
        'ns/op',
        fmt(ops.fresh),
      ],
      [
        'hit: lookup(fresh copy of token, now)',
        fmt(med.freshHit),
        range('freshHit'),
        'ns/op',
        fmt(ops.fresh),
      ],
      ['hit / Map.get, fresh copies', fmt(med.freshRatio, 2), range('freshRatio', 2), 'ratio', ''],
      ['miss: await resolve(new token)', fmt(med.miss), range('miss'), 'ns/op', fmt(ops.miss)],
      [
        `coalesced miss: ${COALESCE} x resolve(copies of one new token)`,
        fmt(med.coalesced),
        range('coalesced'),
        'ns/request',
        fmt(ops.coalesced),
      ],
      [
        `renewal sweep: ${ENTRIES} due entries, lookup + renewal`,
        fmt(med.sweep),
        range('sweep'),
        'ns/entry',
        fmt(ops.sweep),
      ],
      [`bytes per entry: V8 heap (${ENTRIES} entries)`, fmt(med.heap), range('heap'), 'bytes', ''],
      ['bytes per entry: off-heap (body Buffer)', fmt(med.offHeap), range('offHeap'), 'bytes', ''],
    ],
  )
  const targets = [
    { target: 'cache: Map.get baseline (ns/op)', value: Math.round(med.map) },
    { target: 'cache: hit, lookup (ns/op)', value: Math.round(med.hit) },
    { target: 'cache: hit / Map.get (ratio)', value: med.ratio },
    {
      target: 'cache: Map.get baseline, fresh token copy (ns/op)',
      value: Math.round(med.freshMap),
    },
    { target: 'cache: hit, fresh token copy (ns/op)', value: Math.round(med.freshHit) },
    { target: 'cache: hit / Map.get, fresh token copies (ratio)', value: med.freshRatio },
    { target: 'cache: miss, awaited resolve (ns/op)', value: Math.round(med.miss) },
    {
      target: `cache: coalesced miss, ${COALESCE} at once (ns/request)`,
      value: Math.round(med.coalesced),
    },
    { target: 'cache: renewal sweep (ns/entry)', value: Math.round(med.sweep) },
    { target: 'cache: V8 heap bytes per entry', value: Math.round(med.heap) },
    { target: 'cache: off-heap bytes per entry', value: Math.round(med.offHeap) },
  ].map((t) => ({ ...t, verdict: 'info' }))
  console.log(`results: ${writeResults('cache', { ...raw, medians: med, targets })}`)
  return targets
}

// ---------------------------------------------------------------------------------------------
// Child: the measurements.

/** A flat (sequential) copy of a string, as a request's token is when it comes off the socket. */
const flatCopy = (s) => Buffer.from(s, 'latin1').toString('latin1')

/** Nanoseconds since an arbitrary start. */
const nowNs = () => process.hrtime.bigint()
const nsPerOp = (t0, ops) => Number(nowNs() - t0) / ops

/**
 * A maker of checked pod tokens (CheckedToken {token, claims}) valid at clock time `atMs`: one
 * real RS256 token minted with TokenIssuer, then copies of it with their own pod, jti and a
 * random signature (signing thousands would take seconds; the cache never checks signatures).
 */
async function tokenMaker(atMs) {
  const { TokenIssuer } = await import(dist('mock/token-issuer.js'))
  const { parseToken } = await import(dist('token/parse-token.js'))
  const issuer = await TokenIssuer.generate('RS256')
  const real = await issuer.mint({
    namespace: 'default',
    serviceAccount: 'app',
    podName: 'app-5d8f7c9b6-00000',
    nowMs: atMs,
  })
  const [header, payload] = real.split('.')
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))
  let n = 0
  const make = () => {
    n++
    claims['kubernetes.io'].pod = {
      name: `app-5d8f7c9b6-${n.toString(36).padStart(5, '0')}`,
      uid: randomUUID(),
    }
    claims.jti = randomUUID()
    const body = Buffer.from(JSON.stringify(claims)).toString('base64url')
    const token = flatCopy(`${header}.${body}.${randomBytes(256).toString('base64url')}`)
    return { token, claims: parseToken(token) }
  }
  return { make, realLength: real.length }
}

/** A CredentialSource that answers at once with 6-hour credentials; counts its calls. */
function instantSource(clock) {
  const secret = randomBytes(30).toString('base64')
  // An EKS Auth session token is about 1 KB of base64.
  const sessionToken = randomBytes(768).toString('base64')
  const source = {
    calls: 0,
    background: 0,
    fetch(_request, options) {
      source.calls++
      if (options?.background) source.background++
      return Promise.resolve({
        credentials: {
          accessKeyId: 'ASIAEXAMPLEEXAMPLE00',
          secretAccessKey: secret,
          sessionToken,
          accountId: '111122223333',
          expirationMs: clock.now() + 6 * HOUR_MS,
          assumedRoleArn: 'arn:aws:sts::111122223333:assumed-role/BenchApp/eks-bench-app-5d8f',
        },
        association: { id: 'a-0123456789abcdef0', namespace: 'default', serviceAccount: 'app' },
      })
    },
    warmUp: () => Promise.resolve(),
    close: () => Promise.resolve(),
  }
  return source
}

/** Resolves once every microtask queued so far has run (the source answers in microtasks). */
const drain = () => new Promise((resolve) => setImmediate(resolve))

/** What both children need: a token maker, a clock, and a maker of caches. */
async function setup() {
  const { CredentialCache } = await import(dist('cache/credential-cache.js'))
  const { tokenScope } = await import(dist('cache/entry-scope.js'))
  const { ManualClock } = await import(dist('util/clock.js'))
  const { createMetrics } = await import(dist('metrics/metrics.js'))
  const { createLogger } = await import(dist('util/logger.js'))
  const { Registry } = await import('prom-client')

  const discard = new Writable({ write: (_chunk, _enc, cb) => cb() })
  const logger = createLogger('warn', discard)
  const clock = new ManualClock()
  const tokens = await tokenMaker(clock.now())

  /** A new cache on `clk`, the agent's defaults otherwise (2000 entries, renew after 3 h). */
  const newCache = (clk = clock) => {
    const source = instantSource(clk)
    const cache = new CredentialCache({
      source,
      clock: clk,
      metrics: createMetrics({ registry: new Registry(), version: 'bench', processMetrics: false }),
      logger,
      maxEntries: ENTRIES,
      maxRetentionMs: 3 * HOUR_MS,
      refreshQps: 1e9,
    })
    return { cache, source }
  }
  return { ManualClock, clock, tokens, newCache, tokenScope }
}

function check(ok, what) {
  if (!ok) throw new Error(`cache benchmark: ${what}`)
}

/** The times: rounds of every measurement in turn, after warm-up rounds (JIT tier-up). */
async function timeChild(full) {
  const { ManualClock, clock, tokens, newCache, tokenScope } = await setup()
  const warmupRounds = 2
  const roundCount = full ? 15 : 5
  const ops = {
    hit: ENTRIES * (full ? 200 : 60), // passes over the 2000 cached tokens
    fresh: ENTRIES * (full ? 20 : 10),
    miss: ENTRIES,
    coalesced: (full ? 300 : 100) * COALESCE,
    sweep: ENTRIES,
  }

  // The hit set: 2000 cached tokens, looked up with flat copies (a request's token is never the
  // string the cache holds, so lookup's string comparison reads all ~1 KB of both). The Map
  // baseline holds the same tokens and is read with the same copies. V8 keeps a string's hash in
  // the string once computed, so from the second pass on Map.get does not hash the copies again
  // (a request's fresh string would be hashed once per request; the cache never hashes it).
  const hitSet = newCache()
  const map = new Map()
  const lookupKeys = []
  for (let i = 0; i < ENTRIES; i++) {
    const request = tokens.make()
    const entry = await hitSet.cache.resolve(tokenScope(request))
    map.set(request.token, entry)
    lookupKeys.push(flatCopy(request.token))
  }
  check(hitSet.cache.size === ENTRIES, `hit set holds ${hitSet.cache.size} entries`)

  // Each measurement is its own function, so that V8 optimises each loop for its own calls; each
  // starts after a full GC, so that no measurement pays for another's garbage.

  /** cache.lookup() of every string in `keys` (copies of cached tokens), in order: ns. */
  function hitPass(cache, now, keys) {
    let hits = 0
    const t0 = nowNs()
    for (let i = 0; i < keys.length; i++) if (cache.lookup(keys[i], now) !== undefined) hits++
    const ns = Number(nowNs() - t0)
    check(hits === keys.length, `${keys.length - hits} lookups missed`)
    return ns
  }

  /** Map.get() of every string in `keys`, in order: ns. */
  function mapPass(keys) {
    let hits = 0
    const t0 = nowNs()
    for (let i = 0; i < keys.length; i++) if (map.get(keys[i]) !== undefined) hits++
    const ns = Number(nowNs() - t0)
    check(hits === keys.length, `${keys.length - hits} Map lookups missed`)
    return ns
  }

  /** Runs a and b, in an order alternating with i, so that drift falls on both alike. */
  function inTurn(i, a, b) {
    if (i % 2 === 0) {
      a()
      b()
    } else {
      b()
      a()
    }
  }

  /**
   * Hit and baseline, pass by pass in turn (each pass well under a millisecond), so that both see
   * the same machine: a neighbour taking the core lands on either alike, and the per-round ratio
   * holds even when the absolute figures move.
   */
  function measureHitAndMap() {
    const { cache } = hitSet
    const now = clock.now()
    let hitNs = 0
    let mapNs = 0
    globalThis.gc()
    for (let pass = 0; pass < ops.hit / ENTRIES; pass++) {
      inTurn(
        pass,
        () => (mapNs += mapPass(lookupKeys)),
        () => (hitNs += hitPass(cache, now, lookupKeys)),
      )
    }
    return { hitNs: hitNs / ops.hit, mapNs: mapNs / ops.hit }
  }

  /**
   * The same with a fresh copy of each token for every lookup, as a request's token is: Map.get
   * then hashes all ~1 KB of it, which is what cacheKey() avoids. The copies are made (not timed)
   * 100 at a time just before they are looked up, so they are in the CPU cache as a token just
   * read off a socket is; each side gets its own (a copy keeps the hash Map.get computed).
   */
  function measureFreshHitAndMap() {
    const { cache } = hitSet
    const now = clock.now()
    let hitNs = 0
    let mapNs = 0
    globalThis.gc()
    const chunk = 100
    for (let done = 0; done < ops.fresh; done += chunk) {
      const from = done % ENTRIES
      const forMap = lookupKeys.slice(from, from + chunk).map(flatCopy)
      const forHit = lookupKeys.slice(from, from + chunk).map(flatCopy)
      inTurn(
        done / chunk,
        () => (mapNs += mapPass(forMap)),
        () => (hitNs += hitPass(cache, now, forHit)),
      )
    }
    return { freshHitNs: hitNs / ops.fresh, freshMapNs: mapNs / ops.fresh }
  }

  async function measureMiss() {
    const requests = Array.from({ length: ops.miss }, tokens.make)
    const { cache, source } = newCache()
    globalThis.gc()
    const t0 = nowNs()
    for (const r of requests) await cache.resolve(tokenScope(r))
    const ns = nsPerOp(t0, ops.miss)
    check(source.calls === ops.miss && cache.size === ops.miss, 'a miss did not call or store')
    return ns
  }

  async function measureCoalesced() {
    const tokenCount = ops.coalesced / COALESCE
    const { cache, source } = newCache()
    const waits = new Array(COALESCE)
    let ns = 0
    globalThis.gc()
    for (let t = 0; t < tokenCount; t++) {
      // Concurrent requests each carry their own copy of the token (resolve() looks each up in
      // the calls in flight, by string): made just before, not timed.
      const { token, claims } = tokens.make()
      const requests = Array.from({ length: COALESCE }, () => ({ token: flatCopy(token), claims }))
      const t0 = nowNs()
      for (let k = 0; k < COALESCE; k++) waits[k] = cache.resolve(tokenScope(requests[k]))
      await Promise.all(waits)
      ns += Number(nowNs() - t0)
    }
    check(source.calls === tokenCount, `${source.calls} upstream calls for ${tokenCount} tokens`)
    return ns / ops.coalesced
  }

  async function measureSweep() {
    // Its own clock, since time moves: fill at t, then jump past every renewal time (at most
    // 1.1 x 3 h after the fetch, with jitter) but well before the entries stop being served
    // (6 h - 15 s) and the tokens expire (24 h).
    const clk = new ManualClock(clock.now())
    const { cache, source } = newCache(clk)
    const keys = []
    for (let i = 0; i < ENTRIES; i++) {
      const request = tokens.make()
      await cache.resolve(tokenScope(request))
      keys.push(flatCopy(request.token))
    }
    clk.advance(3.5 * HOUR_MS)
    const now = clk.now()
    globalThis.gc()
    const t0 = nowNs()
    for (const k of keys) cache.lookup(k, now)
    while (cache.inflight > 0) await drain()
    const ns = nsPerOp(t0, ENTRIES)
    check(source.background === ENTRIES, `${source.background} renewals for ${ENTRIES} entries`)
    check(
      keys.every((k) => cache.lookup(k, now)?.fetchedAtMs === now),
      'an entry was not renewed',
    )
    return ns
  }

  // Each round runs every measurement once, in turn, so drift over the run reaches them all alike.
  const rounds = []
  for (let r = 0; r < warmupRounds + roundCount; r++) {
    const round = {
      ...measureHitAndMap(),
      ...measureFreshHitAndMap(),
      missNs: await measureMiss(),
      coalescedNs: await measureCoalesced(),
      sweepNs: await measureSweep(),
    }
    if (r >= warmupRounds) rounds.push(round)
  }
  return {
    node: process.version,
    full,
    tokenLength: lookupKeys[0].length,
    realTokenLength: tokens.realLength,
    warmupRounds,
    ops,
    rounds,
  }
}

/** Bytes per entry: heap used after full GCs, from an empty cache to 2000 entries. */
async function memoryChild(full) {
  const { tokens, newCache, tokenScope } = await setup()
  const warmupRounds = 1
  const roundCount = full ? 5 : 3
  const used = () => {
    globalThis.gc()
    globalThis.gc()
    const m = process.memoryUsage()
    return { heap: m.heapUsed, arrayBuffers: m.arrayBuffers }
  }
  const memory = []
  for (let r = 0; r < warmupRounds + roundCount; r++) {
    const { cache } = newCache()
    const before = used()
    // The tokens are made here, so that the only reference left to them is the cache's: a
    // request's token and claims stay alive as long as its entry does.
    for (let i = 0; i < ENTRIES; i++) await cache.resolve(tokenScope(tokens.make()))
    const after = used()
    check(cache.size === ENTRIES, `memory cache holds ${cache.size} entries`)
    if (r < warmupRounds) continue
    memory.push({
      entries: ENTRIES,
      heapBytes: after.heap - before.heap,
      // Each entry's body: a Buffer with its own memory, outside the V8 heap (byte lengths only,
      // not what malloc adds per allocation).
      arrayBufferBytes: after.arrayBuffers - before.arrayBuffers,
    })
  }
  return { warmupRounds, memory }
}

if (process.argv[1] === SELF && process.argv[2] === '--child') {
  const run = process.argv[3] === 'memory' ? memoryChild : timeChild
  run(process.env.BENCH_FULL === '1').then(
    (result) => process.stdout.write(JSON.stringify(result) + '\n'),
    (err) => {
      console.error(err)
      process.exitCode = 1
    },
  )
}
