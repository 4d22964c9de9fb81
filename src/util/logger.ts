// Structured JSON logs (pino) with a fixed redaction list, so that no token, secret key or session
// token can ever be written, whatever a caller passes in.

import { createHash } from 'node:crypto'
import { pino } from 'pino'
import type { DestinationStream, Logger } from 'pino'
import type { LogLevel } from '../config/server-config.js'

export type { Logger }

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
    destination ?? pino.destination({ dest: 1, sync: false }),
  )
}

/** Short, non-reversible token digest for logs (never the token itself). */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 12)
}
