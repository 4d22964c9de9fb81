// Structured JSON logs (pino) with a fixed redaction list, so that no token, secret key or session
// token can ever be written, whatever a caller passes in.

import { createHash } from 'node:crypto'
import { pino } from 'pino'
import type { DestinationStream, Logger } from 'pino'
import { TurnBatchingDestination, batchedDestination } from './log-destination.js'

export type { Logger }

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

const SECRET_KEYS = [
  'token',
  'authorization',
  'Authorization',
  'secretAccessKey',
  'SecretAccessKey',
  'sessionToken',
  'SessionToken',
  'Token',
]

export const REDACT_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  'headers.authorization',
  'req.headers.authorization',
  'credentials',
  '*.credentials',
]

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
    },
    destination ?? batchedDestination(),
  )
}

/** Short, non-reversible token digest for logs (never the token itself). */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 12)
}

type RawStream = { write(line: string): unknown }

/** The destination a pino logger writes to (undefined for loggers pino builds without one). */
function destinationOf(logger: Logger): unknown {
  return (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym]
}

/**
 * Writes pre-serialised JSON lines straight to the logger's destination, skipping pino's
 * serialisation and redaction pass (which costs more than the whole cache hit). Only for lines of
 * a fixed schema built from values that can never hold a secret (digests, names, codes).
 */
export function rawLineWriter(logger: Logger): (line: string) => void {
  const stream = destinationOf(logger) as RawStream | undefined
  if (stream === undefined) return (line) => void logger.trace(line)
  return (line) => void stream.write(line)
}

/** Lines the logger's destination dropped since start; always 0 for other destinations. */
export function linesDroppedBy(logger: Logger): () => number {
  const stream = destinationOf(logger)
  return stream instanceof TurnBatchingDestination ? () => stream.linesDropped : () => 0
}

let isoMs = -1
let isoText = ''

/** `new Date(ms).toISOString()`, computed at most once per millisecond. */
export function isoTime(ms: number): string {
  if (ms !== isoMs) {
    isoMs = ms
    isoText = new Date(ms).toISOString()
  }
  return isoText
}
