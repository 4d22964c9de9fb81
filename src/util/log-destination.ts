// Where the agent's log lines go: stdout, written asynchronously, one write per event-loop turn,
// with a bounded backlog.
//
// pino's asynchronous destination (SonicBoom) starts one write at a time and, when it completes,
// writes at most 16 KiB more. At -v trace (a line per answer, the reference chart's level) a busy
// agent logs more than that per turn, and the backlog grew in memory without bound (measured in
// bench/README.md). Handing SonicBoom each turn's lines as one string lets every completed write
// carry all that was logged meanwhile, and costs less per line. Should stdout still fall behind
// (a stalled log pipe), lines past MAX_BACKLOG_BYTES are dropped, counted
// (pod_identity_log_lines_dropped_total), and reported in a warning line once output resumes.

import { pino } from 'pino'
import type { DestinationStream } from 'pino'

/** Log bytes queued for stdout beyond which new lines are dropped. */
export const MAX_BACKLOG_BYTES = 16 * 1024 * 1024

/** The part of SonicBoom this file uses. */
export interface LogSink {
  write(data: string): unknown
  flush(cb?: (err?: Error) => void): void
  flushSync(): void
  on(event: 'drop', listener: (data: string) => void): unknown
}

/** How long after a first drop the warning with the count is written (ms). */
const DROP_REPORT_MS = 1000

/** Every destination made (one per logger: one in the agent), for the exit hook. */
const live = new Set<TurnBatchingDestination>()
let exitHooked = false

/**
 * A pino destination that collects the lines written during one event-loop turn and passes them
 * to the sink as one string (from setImmediate). Lines keep their order. Lines still pending when
 * the process exits are written synchronously.
 */
export class TurnBatchingDestination implements DestinationStream {
  private readonly sink: LogSink
  private readonly reportAfterMs: number
  private pending = ''
  private scheduled = false
  private droppedLines = 0
  private droppedTotal = 0
  /** Set while the report line is being handed to the sink, and whether the sink dropped it. */
  private reporting = false
  private reportLost = false
  private reportTimer: NodeJS.Timeout | undefined
  private readonly flushPending = (): void => {
    this.scheduled = false
    const chunk = this.pending
    this.pending = ''
    if (chunk === '') return
    try {
      this.sink.write(chunk)
    } catch {
      // SonicBoom throws once it is closed (pino ends it when the process is about to exit):
      // there is nowhere left to write, and a log line must never crash the agent.
    }
  }

  constructor(sink: LogSink, { reportAfterMs = DROP_REPORT_MS }: { reportAfterMs?: number } = {}) {
    this.sink = sink
    this.reportAfterMs = reportAfterMs
    sink.on('drop', (data) => this.countDropped(data))
    live.add(this)
    if (!exitHooked) {
      exitHooked = true
      process.once('exit', () => {
        for (const d of live) d.flushSyncQuietly()
      })
    }
  }

  write(line: string): boolean {
    this.pending += line
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.flushPending)
    }
    return true
  }

  /** Log lines dropped since start because output fell behind (the warning lines not counted). */
  get linesDropped(): number {
    return this.droppedTotal
  }

  /** Hand the pending lines to the sink now, then let it drain (pino's logger.flush()). */
  flush(cb?: (err?: Error) => void): void {
    this.flushPending()
    this.sink.flush(cb)
  }

  /** Write everything pending to the file descriptor before returning. */
  flushSync(): void {
    this.flushPending()
    this.sink.flushSync()
  }

  private flushSyncQuietly(): void {
    try {
      this.flushSync()
    } catch {
      // At exit, with stdout closed or not yet open, there is nowhere left to write.
    }
  }

  private countDropped(data: string): void {
    if (this.reporting) {
      this.reportLost = true
      return
    }
    let n = 0
    for (let i = data.indexOf('\n'); i !== -1; i = data.indexOf('\n', i + 1)) n++
    this.droppedLines += n
    this.droppedTotal += n
    this.armReport()
  }

  private armReport(): void {
    if (this.reportTimer === undefined) {
      this.reportTimer = setTimeout(() => this.reportDropped(), this.reportAfterMs)
      this.reportTimer.unref()
    }
  }

  /**
   * One warning line with the count, after the lines logged before it. If the sink drops it too
   * (output still stalled), the count is kept and the report tried again later.
   */
  private reportDropped(): void {
    this.reportTimer = undefined
    this.flushPending()
    const n = this.droppedLines
    if (n === 0) return // reported already (a timer armed by the flush above)
    this.reportLost = false
    this.reporting = true
    try {
      this.sink.write(
        `{"level":"warn","time":"${new Date().toISOString()}","event":"log_lines_dropped","lines":${n},"msg":"log output fell too far behind; lines dropped"}\n`,
      )
    } catch {
      return // the sink is closed: nowhere to report to
    } finally {
      this.reporting = false
    }
    if (this.reportLost) this.armReport()
    else this.droppedLines -= n
  }
}

/**
 * The agent's log destination: a file descriptor (stdout by default), written asynchronously,
 * batched per turn, with at most maxBacklogBytes queued.
 */
export function batchedDestination({
  dest = 1,
  maxBacklogBytes = MAX_BACKLOG_BYTES,
  reportAfterMs,
}: {
  dest?: number | string
  maxBacklogBytes?: number
  reportAfterMs?: number
} = {}): TurnBatchingDestination {
  const sink = pino.destination({ dest, sync: false, maxLength: maxBacklogBytes })
  return new TurnBatchingDestination(sink as unknown as LogSink, { reportAfterMs })
}
