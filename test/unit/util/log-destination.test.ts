import { EventEmitter } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { TurnBatchingDestination, batchedDestination } from '../../../src/util/log-destination.js'
import type { LogSink } from '../../../src/util/log-destination.js'
import { createLogger, linesDroppedBy } from '../../../src/util/logger.js'
import { until } from '../../helpers/until.js'

/** A sink that records each write it gets, or, while stalled, drops it as SonicBoom does. */
class RecordingSink extends EventEmitter implements LogSink {
  writes: string[] = []
  syncFlushes = 0
  stalled = false
  /** Drop writes longer than this, as SonicBoom does past its backlog limit. */
  dropOver = Infinity
  write(data: string): boolean {
    if (this.stalled || data.length > this.dropOver) {
      this.emit('drop', data)
      return false
    }
    this.writes.push(data)
    return true
  }
  flush(cb?: (err?: Error) => void): void {
    cb?.()
  }
  flushSync(): void {
    this.syncFlushes++
  }
}

const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('TurnBatchingDestination', () => {
  it('hands the sink one string per event-loop turn, lines in order', async () => {
    const sink = new RecordingSink()
    const dest = new TurnBatchingDestination(sink)
    for (let i = 0; i < 500; i++) dest.write(`line ${i}\n`)
    expect(sink.writes).toEqual([]) // nothing until the turn ends
    await nextTurn()
    expect(sink.writes).toHaveLength(1)
    expect(sink.writes[0]!.split('\n').slice(0, 3)).toEqual(['line 0', 'line 1', 'line 2'])
    expect(sink.writes[0]!.split('\n')).toHaveLength(501)
    dest.write('later\n')
    await nextTurn()
    expect(sink.writes).toEqual([sink.writes[0], 'later\n'])
    await nextTurn()
    expect(sink.writes).toHaveLength(2) // no empty writes
  })

  it('flushSync and flush hand over pending lines at once', () => {
    const sink = new RecordingSink()
    const dest = new TurnBatchingDestination(sink)
    dest.write('a\n')
    dest.flushSync()
    expect(sink.writes).toEqual(['a\n'])
    expect(sink.syncFlushes).toBe(1)
    dest.write('b\n')
    let flushed = false
    dest.flush(() => (flushed = true))
    expect(sink.writes).toEqual(['a\n', 'b\n'])
    expect(flushed).toBe(true)
  })

  it('a report the sink drops keeps its count for the next one', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] })
    try {
      const sink = new RecordingSink()
      const dest = new TurnBatchingDestination(sink, { reportAfterMs: 10 })
      sink.stalled = true
      const dropped = linesDroppedBy(createLogger('info', dest))
      for (let i = 0; i < 3; i++) dest.write(`{"i":${i}}\n`)
      await nextTurn()
      expect(dropped()).toBe(3)
      vi.advanceTimersByTime(10) // the report, dropped too
      expect(dropped()).toBe(3) // a lost report is not a log line of its own
      dest.write('{"i":3}\n')
      await nextTurn()
      sink.stalled = false
      expect(sink.writes).toEqual([])
      vi.advanceTimersByTime(10)
      expect(dropped()).toBe(4) // a total since start: reporting does not reset it
      const lines = sink.writes.map((w) => JSON.parse(w) as Record<string, unknown>)
      expect(lines).toEqual([
        expect.objectContaining({ level: 'warn', event: 'log_lines_dropped', lines: 4 }),
      ])
      dest.write('{"i":4}\n')
      await nextTurn()
      vi.advanceTimersByTime(100)
      expect(sink.writes).toHaveLength(2) // nothing more to report
      expect(sink.writes[1]).toBe('{"i":4}\n')
    } finally {
      vi.useRealTimers()
    }
  })

  it('lines dropped while the report is written are in that report, not in an empty one', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] })
    try {
      const sink = new RecordingSink()
      sink.dropOver = 200
      const dest = new TurnBatchingDestination(sink, { reportAfterMs: 10 })
      const big = `{"pad":"${'x'.repeat(300)}"}\n`
      dest.write(big)
      await nextTurn() // dropped; the report is due in 10 ms
      dest.write(big) // pending when the report's timer fires
      vi.advanceTimersByTime(10)
      vi.advanceTimersByTime(10)
      await nextTurn()
      const reports = sink.writes.map((w) => JSON.parse(w) as Record<string, unknown>)
      expect(reports).toEqual([expect.objectContaining({ event: 'log_lines_dropped', lines: 2 })])
    } finally {
      vi.useRealTimers()
    }
  })

  it('linesDroppedBy reads 0 for a logger writing elsewhere', () => {
    expect(linesDroppedBy(createLogger('info', new RecordingSink()))()).toBe(0)
  })

  it('a closed sink does not turn a log line into an uncaught exception', async () => {
    const sink = new RecordingSink()
    sink.write = () => {
      throw new Error('SonicBoom destroyed')
    }
    const dest = new TurnBatchingDestination(sink)
    dest.write('late\n')
    await nextTurn() // an exception from setImmediate would fail the test run
    expect(() => dest.flushSync()).not.toThrow()
  })

  it('pino log lines go through it unchanged', async () => {
    const sink = new RecordingSink()
    const logger = createLogger('info', new TurnBatchingDestination(sink))
    logger.info({ event: 'one' }, 'first')
    logger.warn({ event: 'two' }, 'second')
    logger.debug('not at info')
    await nextTurn()
    expect(sink.writes).toHaveLength(1)
    const lines = sink.writes[0]!.trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as object)
    expect(lines).toMatchObject([
      { level: 'info', event: 'one', msg: 'first' },
      { level: 'warn', event: 'two', msg: 'second' },
    ])
  })
})

describe('batchedDestination, to a real file', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pia-logdest-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  const fileLines = (file: string): string[] =>
    (existsSync(file) ? readFileSync(file, 'utf8') : '').split('\n').filter((l) => l !== '')

  /** The file's lines once there are at least n of them. */
  async function linesOnceAtLeast(file: string, n: number): Promise<string[]> {
    await until(() => fileLines(file).length >= n, `${n} lines in ${file}`)
    return fileLines(file)
  }

  it('writes every line, in order', async () => {
    const file = join(dir, 'all.log')
    const dest = batchedDestination({ dest: file })
    const n = 20_000
    for (let turn = 0; turn < 20; turn++) {
      for (let i = 0; i < n / 20; i++) dest.write(`{"n":${turn * (n / 20) + i}}\n`)
      await nextTurn()
    }
    const lines = await linesOnceAtLeast(file, n)
    expect(lines).toHaveLength(n)
    expect(lines.map((l) => (JSON.parse(l) as { n: number }).n)).toEqual(
      Array.from({ length: n }, (_, i) => i),
    )
  })

  it('drops what is past the backlog limit and reports how many lines, then goes on', async () => {
    const file = join(dir, 'drops.log')
    const dest = batchedDestination({ dest: file, maxBacklogBytes: 4096, reportAfterMs: 20 })
    const line = `{"pad":"${'x'.repeat(990)}"}\n` // 1,001 bytes
    for (let i = 0; i < 10; i++) dest.write(line) // one turn: 10 KB, over the limit
    await nextTurn()
    const [report] = await linesOnceAtLeast(file, 1)
    expect(JSON.parse(report!)).toMatchObject({
      level: 'warn',
      event: 'log_lines_dropped',
      lines: 10,
    })
    dest.write('{"after":true}\n')
    const lines = await linesOnceAtLeast(file, 2)
    expect(lines).toHaveLength(2)
    expect(JSON.parse(lines[1]!)).toEqual({ after: true })
  })
})
