// Question: how many instructions does a cache hit cost against bare node:http, free of this
// machine's noise? Usage (after npm run build; needs valgrind): node bench/tools/instructions.js
// [full]
//
// Instructions per hit: the hot path's CPU cost counted, not timed. On this shared machine CPU
// time per request moves by +-15 % between identical runs; instruction counts do not. Each server
// (agent -v info, agent -v trace, bare node:http) runs under valgrind's callgrind, which counts the
// instructions the process executes in user space (all its threads: main, V8's compiler and GC
// helpers, libuv). Start-up, the first request (a miss for the agent) and a warm-up of W hits run
// with instrumentation off (valgrind without instrumentation is ~5x faster); then instrumentation
// is switched on and the counters are dumped (`vgdb --pid=PID dump`) after every segment of K hits
// sent over the same keep-alive connections. A dump holds exactly the instructions since the
// previous one, so start-up and shut-down never enter the figure. The first segments after the
// warm-up still carry JIT tier-up and are skipped until the figure settles; the figure is then
// (sum of the counted segments' instructions) / (their hits): GC is amortised in it.

import { execFile, execFileSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { httpRequest, sleep } from '../lib/procs.js'
import {
  ROOT,
  createFixtures,
  fetchCredentials,
  scratchDir,
  startAgent,
  startBare,
  startMock,
} from '../lib/servers.js'
import { fmt, median, printTable, verdict, writeResults } from '../lib/report.js'

/** `valgrind --version` when valgrind and its vgdb are installed, else undefined. */
function valgrindVersion() {
  const onPath = (name) =>
    (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, name)))
  if (!onPath('vgdb')) return undefined
  try {
    return execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim()
  } catch {
    return undefined
  }
}

/** One callgrind monitor command through vgdb (ptrace wakes a process blocked in epoll_wait). */
function vgdb(pid, ...command) {
  return new Promise((resolve, reject) => {
    execFile('vgdb', [`--pid=${pid}`, ...command], { timeout: 120_000 }, (err, _out, stderr) =>
      err ? reject(new Error(`vgdb ${command.join(' ')}: ${err.message} ${stderr}`)) : resolve(),
    )
  })
}

/**
 * `connections` keep-alive connections to 127.0.0.1:port that stay open across runs (a new
 * connection costs the server work, and per-connection code warms up slowly). run(hits) sends
 * GET /v1/credentials with the same request bytes as wrk's (request line, Host, Authorization),
 * each connection its next request once the previous answer is complete; resolves { ok, bad }.
 */
async function keepAliveClient({ port, hostHeader, token, connections = 8 }) {
  const request = Buffer.from(
    `GET /v1/credentials HTTP/1.1\r\nHost: ${hostHeader}\r\nAuthorization: ${token}\r\n\r\n`,
  )
  const sockets = await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise((resolve, reject) => {
          const s = connect({ host: '127.0.0.1', port, noDelay: true }, () => {
            s.off('error', reject)
            s.on('error', () => {}) // reported by run() as a closed connection
            resolve(s)
          })
          s.once('error', reject)
        }),
    ),
  )
  function run(hits, timeoutMs = 600_000) {
    let sent = 0
    let ok = 0
    let bad = 0
    const one = (socket) =>
      new Promise((resolve, reject) => {
        let buf = Buffer.alloc(0)
        const onClose = () => done(new Error('the server closed a keep-alive connection'))
        const done = (err) => {
          socket.off('data', onData)
          socket.off('close', onClose)
          if (err) reject(err)
          else resolve()
        }
        const next = () => {
          if (sent >= hits) return done()
          sent++
          socket.write(request)
        }
        const onData = (chunk) => {
          buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
          for (;;) {
            const headerEnd = buf.indexOf('\r\n\r\n')
            if (headerEnd < 0) return
            const head = buf.subarray(0, headerEnd).toString('latin1')
            const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
            const total = headerEnd + 4 + (m ? Number(m[1]) : 0)
            if (buf.length < total) return
            if (head.startsWith('HTTP/1.1 200 ')) ok++
            else bad++
            buf = buf.subarray(total)
            next()
          }
        }
        if (socket.destroyed) return onClose()
        socket.on('data', onData)
        socket.once('close', onClose)
        next()
      })
    let timer
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${hits} hits not done in ${timeoutMs} ms`)),
        timeoutMs,
      )
    })
    return Promise.race([Promise.all(sockets.map(one)), timeout]).then(
      () => {
        clearTimeout(timer)
        return { ok, bad }
      },
      (err) => {
        clearTimeout(timer)
        throw err
      },
    )
  }
  return { run, close: () => sockets.forEach((s) => s.destroy()) }
}

/**
 * A callgrind dump's total instructions (Ir, its `summary:` line) and the number of calls to
 * functions whose name contains `callee` (callgrind's compressed names: `(id) name` once, then
 * `(id)`; a `cfn=` line is followed by `calls=N ...`).
 */
function readDump(file, callee) {
  const text = readFileSync(file, 'utf8')
  const m = /^summary:\s+(\d+(?: \d+)*)/m.exec(text)
  if (!m) throw new Error(`no summary line in ${file}`)
  // With --cache-sim=yes / --branch-sim=yes the dump has more events than Ir (its `events:` line).
  const eventNames = (/^events:\s+(.*)$/m.exec(text)?.[1] ?? 'Ir').trim().split(/\s+/)
  const totals = m[1].split(' ').map(Number)
  const events = Object.fromEntries(eventNames.map((name, i) => [name, totals[i] ?? 0]))
  const names = new Map()
  let calls = 0
  let counting = false
  for (const line of text.split('\n')) {
    const fn = /^c?fn=\((\d+)\)(?: (.*))?/.exec(line)
    if (fn) {
      if (fn[2] !== undefined) names.set(fn[1], fn[2])
      counting = line.startsWith('cfn=') && (names.get(fn[1]) ?? '').includes(callee)
    } else if (counting && line.startsWith('calls=')) {
      calls += Number(line.slice(6).split(' ')[0])
      counting = false
    }
  }
  return { instructions: events.Ir, events, calls }
}

/**
 * The nextTick slow mode of a process, up to Node 24: process.nextTick builds its tick object as
 * a literal with computed keys, which V8 may then build through its runtime
 * (Runtime_DefineKeyedOwnPropertyInLiteral, 2 calls per nextTick, map migrations) instead of
 * optimised code: about +40 k instructions per hit, once a full GC has freed the literal's maps.
 * Node 26 builds tick objects with a class (bench/README.md, "What the image's flags buy"); this
 * counts the processes in which the runtime function runs anyway.
 */
const SLOW_MODE_CALLEE = 'Runtime_DefineKeyedOwnPropertyInLiteral'
const SLOW_MODE_CALLS_PER_HIT = 1

/**
 * More callgrind options, e.g. BENCH_CALLGRIND_ARGS='--cache-sim=yes --branch-sim=yes': the
 * simulated L1 misses and mispredicted branches per hit are then reported too (where the CPU
 * time ratio runs above the instruction ratio: bench/README, Results).
 */
const EXTRA_CALLGRIND_ARGS = (process.env.BENCH_CALLGRIND_ARGS ?? '').split(/\s+/).filter(Boolean)
/** callgrind's simulated events worth a column: L1 instruction, read and write misses; mispredicts. */
const SIMULATED_EVENTS = ['I1mr', 'D1mr', 'D1mw', 'Bcm', 'Bim']

/** Index of the first segment from which `window` consecutive ones are within +-tol of their median. */
function settledAt(perHit, window, tol) {
  for (let i = 0; i + window <= perHit.length; i++) {
    const w = perHit.slice(i, i + window)
    const m = median(w)
    if (w.every((x) => Math.abs(x / m - 1) <= tol)) return i
  }
  return -1
}

async function instructionsPerHit({ fx, full }) {
  const version = valgrindVersion()
  if (version === undefined) {
    console.log(
      '\ninstructions: SKIPPED: valgrind is not installed (apt-get install -y valgrind); no targets',
    )
    return []
  }
  const warmHits = full ? 20_000 : 10_000 // uninstrumented (fast): tier-up of per-request code
  const segmentHits = 1000
  const settleWindow = 3 // segments within +-2 % of their median: tier-up is over
  const settleTol = 0.02
  const maxSettleSegments = 10
  const countedSegments = full ? 8 : 3
  const repeats = full ? 3 : 2
  const connections = 8
  const [token] = await fx.mint(1, 'instr')
  const outDir = join(ROOT, 'bench', 'results', 'callgrind')
  rmSync(outDir, { recursive: true, force: true })
  mkdirSync(outDir, { recursive: true })

  const mock = await startMock(fx)
  const live = new Set()
  try {
    // The hit's exact bytes for the bare server, from a native agent.
    const native = await startAgent(fx, mock.url)
    live.add(native)
    const first = await fetchCredentials(native, token)
    if (first.status !== 200) throw new Error(`warm-up request: ${first.status} ${first.body}`)
    await native.stop()
    live.delete(native)
    const bodyFile = join(fx.dir, 'instr-hit-body.json')
    writeFileSync(bodyFile, first.body)

    let seq = 0
    /** One server process under callgrind; resolves its per-segment counts. */
    async function counted(kind) {
      const id = `${kind}-${++seq}`
      const dir = join(fx.dir, `callgrind-${id}`)
      mkdirSync(dir, { recursive: true })
      const out = join(dir, 'cg.out')
      const wrap = [
        'valgrind',
        '--tool=callgrind',
        '--instr-atstart=no',
        `--callgrind-out-file=${out}`,
        `--log-file=${out}.log`,
        ...EXTRA_CALLGRIND_ARGS,
      ]
      const pace = { wrap, readyTimeoutMs: 180_000, stopGraceMs: 120_000 }
      const t0 = performance.now()
      const srv =
        kind === 'bare'
          ? await startBare(bodyFile, pace)
          : await startAgent(fx, mock.url, { verbosity: kind, pollMs: 50, ...pace })
      live.add(srv)
      let client
      try {
        const hostHeader = `127.0.0.1:${srv.port}`
        const firstAnswer = await httpRequest(srv.url, {
          headers: { host: hostHeader, authorization: token },
          timeoutMs: 60_000,
        })
        if (firstAnswer.status !== 200) {
          throw new Error(`${kind}: first request ${firstAnswer.status} ${firstAnswer.body}`)
        }
        client = await keepAliveClient({ port: srv.port, hostHeader, token, connections })
        const startMs = performance.now() - t0
        const w0 = performance.now()
        const warm = await client.run(warmHits)
        const warmMs = performance.now() - w0
        if (warm.bad > 0) throw new Error(`${kind}: ${warm.bad} warm-up answers were not 200`)
        await vgdb(srv.pid, 'instrumentation', 'on')
        let dumps = 0
        const dump = async () => {
          await vgdb(srv.pid, 'dump')
          const file = `${out}.${++dumps}`
          for (let i = 0; i < 100 && !existsSync(file); i++) await sleep(50)
          return file
        }
        rmSync(await dump(), { force: true }) // the switch itself
        const segments = []
        let settled = -1
        while (segments.length < maxSettleSegments + countedSegments) {
          const t = performance.now()
          const r = await client.run(segmentHits)
          const ms = performance.now() - t
          if (r.bad > 0) throw new Error(`${kind}: ${r.bad} answers were not 200`)
          const file = await dump()
          const { instructions, events, calls } = readDump(file, SLOW_MODE_CALLEE)
          segments.push({ instructions, events, hits: segmentHits, ms, slowModeCalls: calls })
          if (settled < 0) {
            settled = settledAt(
              segments.map((s) => s.instructions / s.hits),
              settleWindow,
              settleTol,
            )
          }
          const last = settled >= 0 && segments.length >= settled + countedSegments
          // Keep one steady segment's dump per process for callgrind_annotate.
          if (last) copyFileSync(file, join(outDir, `${id}.out`))
          rmSync(file, { force: true })
          if (last) break
          if (settled < 0 && segments.length >= maxSettleSegments) {
            settled = segments.length - settleWindow // never settled: count the latest ones
          }
        }
        client.close()
        client = undefined
        await srv.stop()
        live.delete(srv)
        const used = segments.slice(settled, settled + countedSegments)
        const sum = (f) => used.reduce((s, x) => s + x[f], 0)
        const perSegment = used.map((s) => s.instructions / s.hits)
        const eventsPerHit = {}
        for (const name of Object.keys(used[0]?.events ?? {})) {
          eventsPerHit[name] = used.reduce((t, x) => t + x.events[name], 0) / sum('hits')
        }
        return {
          id,
          perHit: sum('instructions') / sum('hits'),
          eventsPerHit,
          slowMode: sum('slowModeCalls') / sum('hits') >= SLOW_MODE_CALLS_PER_HIT,
          segmentMin: Math.min(...perSegment),
          segmentMax: Math.max(...perSegment),
          skipped: settled,
          startMs,
          warmMs,
          segments,
          wallMs: performance.now() - t0,
        }
      } finally {
        client?.close()
      }
    }

    const kinds = [
      { key: 'info', label: 'agent -v info' },
      { key: 'trace', label: 'agent -v trace' },
      { key: 'bare', label: 'bare node:http' },
    ]
    const runs = []
    for (let rep = 0; rep < repeats; rep++) {
      for (let k = 0; k < kinds.length; k++) {
        const { key } = kinds[(k + rep) % kinds.length]
        const r = await counted(key)
        runs.push({ target: key, rep, ...r })
        console.log(
          `  ${key} #${rep + 1}: ${fmt(r.perHit)} instructions/hit (segments ` +
            `${fmt(r.segmentMin)}-${fmt(r.segmentMax)}; ${r.skipped} skipped; ` +
            `${fmt(r.wallMs / 1000, 1)} s)${r.slowMode ? ': IN THE NEXTTICK SLOW MODE' : ''}`,
        )
      }
    }
    const agentRuns = runs.filter((r) => r.target !== 'bare')
    const slowAgents = agentRuns.filter((r) => r.slowMode).length

    const perRep = (a, b) =>
      Array.from({ length: repeats }, (_, rep) => {
        const ra = runs.find((r) => r.rep === rep && r.target === a)
        const rb = runs.find((r) => r.rep === rep && r.target === b)
        return ra.perHit / rb.perHit
      })
    const summary = {}
    for (const { key, label } of kinds) {
      const list = runs.filter((r) => r.target === key).map((r) => r.perHit)
      summary[key] = {
        target: label,
        perHit: median(list),
        min: Math.min(...list),
        max: Math.max(...list),
      }
    }
    const ratioLists = { infoVsBare: perRep('info', 'bare'), traceVsInfo: perRep('trace', 'info') }
    const ratios = {
      infoVsBare: median(ratioLists.infoVsBare),
      traceVsInfo: median(ratioLists.traceVsInfo),
    }
    const range = (list) => `${fmt(Math.min(...list), 3)}-${fmt(Math.max(...list), 3)}`

    printTable(
      `Instructions per hit (${version} callgrind, user space; ${warmHits} warm-up hits, then ` +
        `${countedSegments} settled segments of ${segmentHits} hits over ${connections} ` +
        `keep-alive connections; median of ${repeats} processes)`,
      ['server', 'instructions/hit', 'min-max', 'vs bare'],
      kinds.map(({ key }) => [
        summary[key].target,
        fmt(summary[key].perHit),
        `${fmt(summary[key].min)}-${fmt(summary[key].max)}`,
        fmt(summary[key].perHit / summary.bare.perHit, 3),
      ]),
    )
    printTable(
      'Instruction ratios: median of the per-repeat ratios (min-max)',
      ['ratio', 'value', 'min-max'],
      [
        ['agent -v info / bare', fmt(ratios.infoVsBare, 3), range(ratioLists.infoVsBare)],
        ['agent -v trace / -v info', fmt(ratios.traceVsInfo, 3), range(ratioLists.traceVsInfo)],
      ],
    )
    const simulated = SIMULATED_EVENTS.filter((name) => name in (runs[0]?.eventsPerHit ?? {}))
    if (simulated.length > 0) {
      const perHitOf = (key, name) =>
        median(runs.filter((r) => r.target === key).map((r) => r.eventsPerHit[name]))
      printTable(
        `Simulated cache and branch events per hit (BENCH_CALLGRIND_ARGS; medians; ` +
          `ratio to bare in parentheses)`,
        ['server', ...simulated],
        kinds.map(({ key, label }) => [
          label,
          ...simulated.map(
            (name) =>
              `${fmt(perHitOf(key, name))} (${fmt(perHitOf(key, name) / perHitOf('bare', name), 2)})`,
          ),
        ]),
      )
    }
    if (runs.some((r) => r.target === 'bare' && r.slowMode)) {
      console.log('a bare server process was in the nextTick slow mode: its count is high')
    }
    console.log(`a steady segment of each process: callgrind_annotate ${outDir}/<server>-<n>.out`)
    const targets = [
      {
        target: 'hot path instructions/hit within 15 % of bare (valgrind, -v info / bare)',
        value: ratios.infoVsBare,
        ok: ratios.infoVsBare <= 1.15,
      },
      {
        target: 'agent processes in the nextTick slow mode (tick-object map pinned)',
        value: `${slowAgents} of ${agentRuns.length}`,
        ok: slowAgents === 0,
      },
      {
        target: 'instructions/hit -v trace / -v info (valgrind; report only)',
        value: ratios.traceVsInfo,
        ok: true,
        verdict: 'info',
      },
      {
        target: 'instructions/hit, agent -v info / bare (valgrind; report only)',
        value: `${fmt(summary.info.perHit)} / ${fmt(summary.bare.perHit)}`,
        ok: true,
        verdict: 'info',
      },
    ]
    for (const t of targets) t.verdict ??= verdict(t.ok)
    const file = writeResults('instructions', {
      valgrind: version,
      warmHits,
      segmentHits,
      countedSegments,
      connections,
      repeats,
      summary,
      ratios,
      ratioLists,
      targets,
      runs,
      slowAgents,
    })
    console.log(`results: ${file}`)
    return targets
  } finally {
    for (const s of live) await s.stop()
    await mock.stop()
  }
}

const fx = await createFixtures(scratchDir())
await instructionsPerHit({ fx, full: process.argv[2] === 'full' })
process.exit(0)
