// SIGTERM under load, as a DaemonSet rollout sends it: wrk -c64 on a cached token (every
// connection sends its next request the moment an answer arrives), SIGTERM to the agent 2 s in.
// wrk counts a new connection refused once the listener closed as a read error, like a request
// that reached the agent and was reset, so what reached the agent and failed is read from the
// kernel instead (nstat, iproute2): a request the agent dropped is a connection it closed with the
// request unread (TcpExtTCPAbortOnClose) or one that got data after it closed
// (TcpExtTCPAbortOnData). Nothing else on loopback should abort connections during the run.
// Target: none, and the agent exits 0 soon after.

import { execFileSync } from 'node:child_process'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { runLoad } from './lib/load.js'
import { exitOf } from './lib/procs.js'
import { fmt, median, printTable, verdict, writeResults } from './lib/report.js'
import { VARIANT, fetchCredentials, startAgent, startMock } from './lib/servers.js'

/** Connections aborted with data unread or arriving after close, machine-wide so far. */
function aborts() {
  const out = execFileSync('nstat', ['-az', 'TcpExtTCPAbortOnClose', 'TcpExtTCPAbortOnData'], {
    encoding: 'utf8',
  })
  return [...out.matchAll(/^TcpExtTCPAbortOn\w+\s+(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0)
}

async function one(fx, main) {
  const mock = await startMock(fx)
  const agent = await startAgent(fx, mock.url, { main })
  try {
    const [token] = await fx.mint(1, 'shutdown')
    if ((await fetchCredentials(agent, token)).status !== 200) throw new Error('warm-up failed')
    const aborts0 = aborts()
    const load = runLoad({ url: agent.url, token, connections: 64, durationS: 4 })
    await sleep(2000)
    const t = performance.now()
    agent.child.kill('SIGTERM')
    const { code, signal } = await exitOf(agent.child)
    const exitMs = performance.now() - t
    const r = await load
    return {
      exitCode: code ?? signal,
      exitMs,
      requests: r.requests,
      failed: aborts() - aborts0,
      wrkErrors: r.requestErrors + r.connectErrors,
    }
  } finally {
    await Promise.all([agent.stop(), mock.stop()])
  }
}

export async function shutdownUnderLoad({ fx, full }) {
  const subjects = [{ key: 'agent', main: undefined }]
  if (VARIANT) subjects.push({ key: `variant (${VARIANT.label})`, main: VARIANT.main })
  const runs = []
  for (let r = 0; r < (full ? 5 : 2); r++) {
    for (const s of subjects) runs.push({ subject: s.key, run: r + 1, ...(await one(fx, s.main)) })
  }
  printTable(
    'SIGTERM under wrk -c64 (back-to-back keep-alive requests), per run',
    [
      'agent',
      'run',
      'answered',
      'reached the agent and failed',
      'wrk errors (mostly refused reconnects)',
      'exit',
      'exit after ms',
    ],
    runs.map((x) => [
      x.subject,
      String(x.run),
      fmt(x.requests),
      fmt(x.failed),
      fmt(x.wrkErrors),
      String(x.exitCode),
      fmt(x.exitMs),
    ]),
  )
  const own = runs.filter((x) => x.subject === 'agent')
  const failed = Math.max(...own.map((x) => x.failed))
  const targets = [
    {
      target: 'SIGTERM under wrk -c64: requests that reached the agent and failed (most in a run)',
      value: failed,
      verdict: verdict(failed === 0 && own.every((x) => x.exitCode === 0)),
    },
    {
      target: 'SIGTERM under wrk -c64: ms from SIGTERM to exit (median; grace 25 s)',
      value: median(own.map((x) => x.exitMs)),
      verdict: verdict(own.every((x) => x.exitMs < 25_000)),
    },
  ]
  writeResults('shutdown', { runs, targets })
  return targets
}
