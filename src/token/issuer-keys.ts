// The service-account issuer's public keys, pinned by configuration (--token-jwks), never taken
// from a token. A URL is fetched with jose's remote key set (cached for 10 minutes, refetched on an
// unknown `kid` after a cooldown) through undici, so the proxy variables apply; a file is re-read
// when it changes. Keys that cannot be loaded make the resolver throw KeysUnavailableError: the
// caller then serves the token unverified, per token, as without --token-jwks.

import { readFile } from 'node:fs/promises'
import type { Dispatcher } from 'undici'
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors as joseErrors } from 'jose'
import type { JSONWebKeySet, JWTVerifyGetKey } from 'jose'
import { ConfigError } from '../config/values.js'
import type { Clock, TimerHandle } from '../util/clock.js'

/** The keys could not be loaded (unreachable, timed out, not a key set): not the token's fault. */
export class KeysUnavailableError extends Error {}

/** How long after a fetch an unknown `kid` waits before the keys are fetched again, ms. */
export const KEY_REFETCH_COOLDOWN_MS = 1000
/** How long fetched keys are used before they are fetched again on the next miss, ms. */
const KEYS_MAX_AGE_MS = 600_000
/** Budget of one fetch of a remote key set, ms (a pod's SDK waits about 1 s in all). */
const FETCH_TIMEOUT_MS = 1000
/** After a failed fetch, how long new tokens do not wait for the key set (fetched in the background), ms. */
const RETRY_AFTER_FAILURE_MS = 5000
/** How often a key file is looked at for a change, ms. */
const FILE_CHECK_MS = 5000

export interface IssuerKeys {
  /** jose's key resolver for jwtVerify. Throws KeysUnavailableError, or jose's JWKSNoMatchingKey. */
  readonly resolve: JWTVerifyGetKey
  /** Loads the keys ahead of the first token. Never rejects. */
  warmUp(): Promise<void>
  close(): Promise<void>
}

export interface IssuerKeysOptions {
  /** An http(s) URL or a file path. */
  jwks: string
  clock: Clock
  /** Told when a key file is not a usable key set (the keys as loaded before stay). */
  onFileRejected?: (reason: string) => void
}

/** Keys from a URL or a file. Throws ConfigError when a file cannot be read at start-up. */
export async function openIssuerKeys(o: IssuerKeysOptions): Promise<IssuerKeys> {
  return /^https?:\/\//i.test(o.jwks) ? remoteKeys(o) : fileKeys(o)
}

async function remoteKeys(o: IssuerKeysOptions): Promise<IssuerKeys> {
  const undici = await import('undici')
  const dispatcher: Dispatcher = new undici.EnvHttpProxyAgent({ connections: 4 })
  /** Fetches started, so that the keys are copied once per fetch (below). */
  let fetches = 0
  const remote = createRemoteJWKSet(new URL(o.jwks), {
    timeoutDuration: FETCH_TIMEOUT_MS,
    cooldownDuration: KEY_REFETCH_COOLDOWN_MS,
    cacheMaxAge: KEYS_MAX_AGE_MS,
    [customFetch]: (url, init) => {
      fetches++
      const options = { ...init, dispatcher } as unknown as Parameters<typeof undici.fetch>[1]
      return undici.fetch(url, options) as unknown as Promise<Response>
    },
  })
  /** The last keys fetched, kept for when a later fetch fails (stale if error). */
  let lastGood: JWTVerifyGetKey | undefined
  let copiedAt = 0
  const keepLastGood = (): void => {
    if (copiedAt === fetches) return
    const jwks = remote.jwks()
    if (jwks === undefined) return
    copiedAt = fetches
    lastGood = createLocalJWKSet(jwks)
  }
  /** When the last fetch failed: for a while, pods do not wait for another one (below). */
  let failedAtMs = -Infinity
  let lastFailure = ''
  let retriedAtMs = -Infinity
  const failed = (err: unknown): void => {
    failedAtMs = o.clock.now()
    lastFailure = describe(err)
  }
  /** The keys fetched before, while the key set cannot be fetched: a `kid` they lack cannot be judged. */
  const fromLastGood: JWTVerifyGetKey = async (header, token) => {
    if (lastGood === undefined) throw new KeysUnavailableError(`${o.jwks}: ${lastFailure}`)
    try {
      return await lastGood(header, token)
    } catch (err) {
      if (err instanceof joseErrors.JWKSNoMatchingKey) {
        throw new KeysUnavailableError(
          `${o.jwks}: ${lastFailure}; the keys fetched before lack the token's kid`,
        )
      }
      throw err
    }
  }
  const resolve: JWTVerifyGetKey = async (header, token) => {
    if (o.clock.now() - failedAtMs < RETRY_AFTER_FAILURE_MS) {
      // The key set just failed to load: fetch it again in the background, at most once per
      // cooldown, and answer from the keys fetched before (a `kid` they lack cannot be judged).
      const now = o.clock.now()
      if (!remote.reloading && now - retriedAtMs >= KEY_REFETCH_COOLDOWN_MS) {
        retriedAtMs = now
        remote.reload().then(() => {
          failedAtMs = -Infinity
          keepLastGood()
        }, failed)
      }
      return fromLastGood(header, token)
    }
    try {
      try {
        return await remote(header, token)
      } catch (err) {
        if (!(err instanceof joseErrors.JWKSNoMatchingKey) || !remote.coolingDown) throw err
        // A `kid` the keys fetched a moment ago lack: look again once the cooldown has passed
        // (jose then fetches them, unless another fetch came meanwhile: at most one per cooldown).
        await sleep(o.clock, KEY_REFETCH_COOLDOWN_MS)
        return await remote(header, token)
      } finally {
        keepLastGood()
      }
    } catch (err) {
      if (isTokenFault(err)) throw err
      failed(err)
      return fromLastGood(header, token)
    }
  }
  return {
    resolve,
    warmUp: () => remote.reload().then(keepLastGood, () => undefined),
    close: () => dispatcher.close(),
  }
}

async function fileKeys(o: IssuerKeysOptions): Promise<IssuerKeys> {
  let text: string
  try {
    text = await readFile(o.jwks, 'utf8')
  } catch (err) {
    throw new ConfigError(`--token-jwks ${o.jwks}: cannot read the file: ${describe(err)}`)
  }
  let local: JWTVerifyGetKey
  try {
    local = createLocalJWKSet(parseKeySet(text))
  } catch (err) {
    throw new ConfigError(`--token-jwks ${o.jwks}: ${describe(err)}`)
  }
  let loaded = text
  let rejected = ''
  let lastCheckMs = o.clock.now()
  let timer: TimerHandle | undefined
  let checking: Promise<void> | undefined
  const read = async (): Promise<void> => {
    lastCheckMs = o.clock.now()
    const next = await readFile(o.jwks, 'utf8').catch((err: unknown) => describe(err))
    if (next === loaded || next === rejected) return
    try {
      local = createLocalJWKSet(parseKeySet(next))
      loaded = next
    } catch (err) {
      rejected = next
      o.onFileRejected?.(describe(err))
    }
  }
  /** Look at the file (one look at a time, however many ask). */
  const check = (): Promise<void> => (checking ??= read().finally(() => (checking = undefined)))
  const schedule = (): void => {
    timer = o.clock.setTimer(() => void check().finally(schedule), FILE_CHECK_MS)
  }
  schedule()
  const resolve: JWTVerifyGetKey = async (header, token) => {
    try {
      return await local(header, token)
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err
      // Perhaps a key added to the file since the last look: look again, at most once per cooldown.
      const wait = lastCheckMs + KEY_REFETCH_COOLDOWN_MS - o.clock.now()
      if (wait > 0) await sleep(o.clock, wait)
      await check()
      return local(header, token)
    }
  }
  return {
    resolve,
    warmUp: () => Promise.resolve(),
    close: () => {
      timer?.cancel()
      return Promise.resolve()
    },
  }
}

/** A JWKS document: an object with a `keys` array (jose checks each key when it is used). */
function parseKeySet(text: string): JSONWebKeySet {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new Error('is not JSON; expected a JWKS document {"keys": [...]}')
  }
  const keys = (value as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new Error('is not a JWKS document; expected {"keys": [...]} with at least one key')
  }
  return value as JSONWebKeySet
}

/** jose's verdicts about the token itself, as opposed to failures to load the keys. */
function isTokenFault(err: unknown): boolean {
  return (
    err instanceof joseErrors.JWKSNoMatchingKey ||
    err instanceof joseErrors.JWKSMultipleMatchingKeys ||
    err instanceof joseErrors.JOSENotSupported ||
    err instanceof joseErrors.JOSEAlgNotAllowed
  )
}

function describe(err: unknown): string {
  if (err instanceof joseErrors.JWKSTimeout) return `no answer within ${FETCH_TIMEOUT_MS} ms`
  const e = err as { message?: string; cause?: { code?: string; message?: string } } | undefined
  const cause = e?.cause?.code ?? e?.cause?.message
  return `${e?.message ?? String(err)}${cause !== undefined ? ` (${cause})` : ''}`
}

function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(resolve, ms))
}
