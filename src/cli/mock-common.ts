// What the mock commands (mock-eks-auth, mock-sts) share: the flags of the associations file, the
// JWKS, where to listen and which faults to inject, read into one validated object; and waiting
// for SIGINT or SIGTERM.

import { readFile } from 'node:fs/promises'
import { createLocalJWKSet, type JSONWebKeySet } from 'jose'
import { AssociationsError, loadAssociationsFile } from '../associations/associations.js'
import type { Association } from '../associations/associations.js'
import { parseDurationMs } from '../config/duration.js'
import { ConfigError, parsePort } from '../config/values.js'
import type { Faults } from '../mock/faults.js'

/** Flags every mock takes (parseArgs names). */
export const MOCK_COMMON_FLAGS = [
  'associations',
  'jwks',
  'host',
  'port',
  'issuer',
  'latency',
  'throttle-qps',
  'error-rate',
  'error-status',
] as const

/** Their --help lines. */
export function mockCommonUsage(throttled: string): string {
  return `Required:
  --associations FILE          JSON or YAML: {"associations": [{"namespace", "serviceAccount",
                               "roleArn", "durationSeconds"?}]}
  --jwks FILE                  public keys tokens must be signed with (token --jwks-out)

Options:
  --host HOST                  address to listen on (default: 127.0.0.1)
  --port PORT                  port, 0 = any free port (default: 8080)
  --issuer URL                 required token issuer (default: not checked)
  --latency DUR                delay before every answer (default: 0s)
  --throttle-qps N             requests per second before ${throttled}, 0 = off (default: 0)
  --error-rate P               probability 0..1 of answering --error-status (default: 0)
  --error-status 500|503       status of injected errors (default: 503)`
}

export interface MockCommon {
  host: string
  port: number
  issuer: string | undefined
  associations: Association[]
  jwks: JSONWebKeySet
  faults: Partial<Faults>
}

/** Read and check the common flags; throws ConfigError naming the flag. */
export async function readMockCommon(
  values: Partial<Record<(typeof MOCK_COMMON_FLAGS)[number], string>>,
): Promise<MockCommon> {
  const associationsFile = values.associations
  if (associationsFile === undefined || associationsFile === '') {
    throw new ConfigError('--associations is required: a JSON or YAML associations file')
  }
  const jwksFile = values.jwks
  if (jwksFile === undefined || jwksFile === '') {
    throw new ConfigError(
      '--jwks is required: the public JWKS tokens are signed with (token --jwks-out)',
    )
  }
  const port = values.port === undefined ? 8080 : parsePort('--port', values.port)
  const faults: Partial<Faults> = {
    latencyMs: duration(values.latency, '--latency', 0),
    throttleQps: number(values['throttle-qps'], '--throttle-qps', 0, Infinity, 'a number >= 0'),
    errorRate: number(values['error-rate'], '--error-rate', 0, 1, 'a probability from 0 to 1'),
  }
  const errorStatus = values['error-status']
  if (errorStatus !== undefined) {
    if (errorStatus !== '500' && errorStatus !== '503') {
      throw new ConfigError(`--error-status ${JSON.stringify(errorStatus)} must be 500 or 503`)
    }
    faults.errorStatus = errorStatus === '500' ? 500 : 503
  }
  let associations
  try {
    associations = await loadAssociationsFile(associationsFile)
  } catch (err) {
    if (err instanceof AssociationsError) throw new ConfigError(`--associations ${err.message}`)
    throw err
  }
  return {
    host: values.host ?? '127.0.0.1',
    port,
    issuer: values.issuer,
    associations,
    jwks: await loadJwks(jwksFile),
    faults,
  }
}

async function loadJwks(file: string): Promise<JSONWebKeySet> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new ConfigError(`--jwks ${file}: cannot read (${code})`)
  }
  let jwks: unknown
  try {
    jwks = JSON.parse(text)
  } catch {
    throw new ConfigError(
      `--jwks ${file}: not JSON; expected {"keys": [...]} as written by token --jwks-out`,
    )
  }
  const keys = (jwks as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new ConfigError(`--jwks ${file}: expected {"keys": [...]} with at least one public key`)
  }
  if (keys.some((k: unknown) => k !== null && typeof k === 'object' && 'd' in k)) {
    throw new ConfigError(
      `--jwks ${file}: holds a private key; pass the public set (token --jwks-out)`,
    )
  }
  try {
    createLocalJWKSet(jwks as JSONWebKeySet)
  } catch (err) {
    throw new ConfigError(`--jwks ${file}: not a valid JWKS (${(err as Error).message})`)
  }
  return jwks as JSONWebKeySet
}

/** A duration flag in ms, or `fallback` when not given. */
export function duration(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback
  const ms = parseDurationMs(text)
  if (ms === undefined) {
    throw new ConfigError(
      `${flag} ${JSON.stringify(text)} is not a duration (e.g. 0s, 250ms, 6h, 1h30m)`,
    )
  }
  return ms
}

function number(
  text: string | undefined,
  flag: string,
  min: number,
  max: number,
  what: string,
): number {
  if (text === undefined) return min
  const n = Number(text)
  if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new ConfigError(`${flag} ${JSON.stringify(text)} must be ${what}`)
  }
  return n
}

/** Resolves on SIGINT, SIGTERM or `signal` (for in-process use). */
export function waitForStop(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      process.off('SIGINT', done)
      process.off('SIGTERM', done)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    process.once('SIGINT', done)
    process.once('SIGTERM', done)
    if (signal?.aborted) done()
    else signal?.addEventListener('abort', done, { once: true })
  })
}

/** Start a mock, or say in one line why it cannot listen. */
export async function startOrExplain(
  mock: { start(): Promise<string> },
  host: string,
  port: number,
): Promise<string> {
  try {
    return await mock.start()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new ConfigError(`cannot listen on ${host}:${port} (${code})`)
  }
}
