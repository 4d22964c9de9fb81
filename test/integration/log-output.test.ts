// The agent's log output as a real process writes it (src/util/log-destination.ts): at -v trace
// under many concurrent connections every answer's line reaches stdout and none is dropped, and
// lines still pending at process.exit() are written; with stdout stalled, what is dropped is
// reported in a warning line and counted in pod_identity_log_lines_dropped_total.

import { mkdtemp, readFile, rm } from 'node:fs/promises'
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
  runModuleScript,
  runNodeToFile,
  startCli,
  startedCredentialsUrl,
} from '../helpers/spawn.js'
import { until } from '../helpers/until.js'

let dir: string
let issuer: TokenIssuer
let mock: MockEksAuth
let mockUrl: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pia-logout-'))
  ;({ mock, issuer, url: mockUrl } = await startProcessMock('log-cluster'))
})
afterAll(async () => {
  await mock.stop()
  await rm(dir, { recursive: true, force: true })
})

/** The agent's "served" lines. */
const served = (lines: string[]): string[] => lines.filter((l) => l.includes('"event":"served"'))

/** Lines the agent's log_lines_dropped warnings report, summed. */
const droppedIn = (lines: string[]): number =>
  lines.reduce((sum, l) => {
    const m = /"event":"log_lines_dropped","lines":(\d+),/.exec(l)
    return m === null ? sum : sum + Number(m[1])
  }, 0)

describe('log output', () => {
  it('-v trace, 128 connections: one line per answer, none dropped', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    const connections = 128
    const perConnection = 100
    let answered = 0
    const { stdout } = await runNodeToFile(
      dir,
      [MAIN, ...loopbackServerArgs('log-cluster', mockUrl), '-v', 'trace'],
      { PATH: process.env.PATH, HOME: process.env.HOME, ...NODE_KEY_ENV },
      async (_child, out) => {
        await until(() => startedCredentialsUrl(out()) !== undefined, 'the agent to start')
        const url = startedCredentialsUrl(out())!
        answered = await keepAliveBurst(url, {
          connections,
          perConnection,
          headers: { authorization: token },
        })
        await until(() => served(out().split('\n')).length >= answered, 'every served line')
      },
    )
    expect(answered).toBe(connections * perConnection)
    const servedLines = served(stdout.split('\n'))
    expect(servedLines).toHaveLength(answered)
    expect(stdout).not.toContain('log_lines_dropped')
    // The first request of each connection went out together and joined one upstream call.
    const misses = servedLines.filter((l) => l.includes('"cache":"miss"')).length
    expect(misses).toBeGreaterThanOrEqual(1)
    expect(misses).toBeLessThanOrEqual(connections)
    for (const l of servedLines) expect(l).not.toContain(token)
  }, 60_000)

  it('stdout stalled: lines past the 16 MiB backlog are dropped and counted, the agent serves on', async () => {
    const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
    const agent = startCli(
      [...loopbackServerArgs('log-cluster', mockUrl), '-v', 'trace'],
      NODE_KEY_ENV,
    )
    const stdout = agent.child.stdout!
    const connections = 128
    const perConnection = 850 // 108,800 lines of 184 bytes: 20 MB, over the 16 MiB
    let answered = 0
    let peakRssKb = 0
    let metricsText = ''
    try {
      const started = await agent.waitFor((l) => l.event === 'started')
      const url = startedCredentialsUrl(agent.lines.join('\n'))!
      // Stop reading: the pipe fills, then the agent's log backlog.
      stdout.pause()
      answered = await keepAliveBurst(url, {
        connections,
        perConnection,
        headers: { authorization: token },
        onAnswer: async (n) => {
          if (n % 8000 !== 0) return
          const status = await readFile(`/proc/${agent.child.pid}/status`, 'utf8')
          peakRssKb = Math.max(peakRssKb, Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]))
        },
      })
      stdout.resume()
      // A report can be written during the stall and another after it: wait for all of them.
      await until(
        () => served(agent.lines).length + droppedIn(agent.lines) >= answered,
        'every answer written or reported dropped',
      )
      metricsText = await (
        await fetch(`http://127.0.0.1:${Number(started.metricsPort)}/metrics`)
      ).text()
    } finally {
      agent.child.kill('SIGTERM')
      await agent.exited
    }
    expect(answered).toBe(connections * perConnection)
    const reports = agent.lines
      .filter((l) => l.includes('"event":"log_lines_dropped"'))
      .map((l) => JSON.parse(l) as { level: string; lines: number })
    expect(reports.length).toBeGreaterThanOrEqual(1)
    for (const r of reports) expect(r.level).toBe('warn')
    const dropped = reports.reduce((sum, r) => sum + r.lines, 0)
    expect(dropped).toBe(droppedIn(agent.lines))
    // Every answer is either in the output or counted as dropped.
    expect(served(agent.lines).length + dropped).toBe(answered)
    expect(dropped).toBeGreaterThan(0)
    // The metric counts the same lines.
    expect(metricsText).toContain(`\npod_identity_log_lines_dropped_total ${dropped}\n`)
    // The backlog is bounded: 16 MiB of lines, not all 20 MB of them.
    expect(peakRssKb).toBeGreaterThan(0)
    expect(peakRssKb / 1024, 'agent RSS, MiB').toBeLessThan(200)
  }, 90_000)

  it('lines still pending at process.exit() are written', async () => {
    const mod = new URL('../../dist/util/log-destination.js', import.meta.url).href
    const stdout = await runModuleScript(
      `import { batchedDestination } from ${JSON.stringify(mod)}
       const dest = batchedDestination()
       await new Promise((r) => setTimeout(r, 50))
       for (let i = 0; i < 1000; i++) dest.write('{"i":' + i + '}\\n')
       process.exit(0)`,
    )
    const lines = stdout.split('\n').filter((l) => l !== '')
    expect(lines).toHaveLength(1000)
    expect(lines[999]).toBe('{"i":999}')
  })
})
