// The service-account issuer's public keys, pinned by configuration (--token-jwks), never taken
// from a token. A URL is fetched with jose's remote key set (cached for 10 minutes, refetched on an
// unknown `kid` after a cooldown) through undici, so the proxy variables apply; a file is re-read
// when it changes (key-file.ts); the API server's own key set is read as the agent's service account
// (api-server-keys.ts). Keys that cannot be loaded make the resolver throw KeysUnavailableError:
// the caller then serves the token unverified, per token, as without --token-jwks.

import type { Dispatcher } from 'undici'
import { createLocalJWKSet, createRemoteJWKSet, customFetch, errors as joseErrors } from 'jose'
import type { JWTVerifyGetKey } from 'jose'
import type { Clock } from '../util/clock.js'
import { sleepOn } from '../util/clock.js'
import type { ApiServerAccess } from './api-server-keys.js'
import { apiServerAccess } from './api-server-keys.js'
import { fileKeys } from './key-file.js'

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
  /** Read the URL as this service account (its token and the cluster's CA): the API server's keys. */
  serviceAccountDir?: string | undefined
  clock: Clock
  /** Told when a key file is not a usable key set (the keys as loaded before stay). */
  onFileRejected?: (reason: string) => void
}

/** Keys from a URL or a file. Throws ConfigError when a file cannot be read at start-up. */
export async function openIssuerKeys(o: IssuerKeysOptions): Promise<IssuerKeys> {
  if (!/^https?:\/\//i.test(o.jwks)) return fileKeys(o, KEY_REFETCH_COOLDOWN_MS)
  const access =
    o.serviceAccountDir !== undefined ? await apiServerAccess(o.serviceAccountDir) : undefined
  return remoteKeys(o, access)
}

async function remoteKeys(o: IssuerKeysOptions, access?: ApiServerAccess): Promise<IssuerKeys> {
  const undici = await import('undici')
  // The API server is reached directly, trusting only the cluster's CA (a proxy outside the
  // cluster cannot reach its service address); other key sets honour the proxy variables.
  const dispatcher: Dispatcher =
    access !== undefined
      ? new undici.Agent({ connections: 4, connect: { ca: access.ca } })
      : new undici.EnvHttpProxyAgent({ connections: 4 })
  /** Fetches started, so that the keys are copied once per fetch (below). */
  let fetches = 0
  const remote = createRemoteJWKSet(new URL(o.jwks), {
    timeoutDuration: FETCH_TIMEOUT_MS,
    cooldownDuration: KEY_REFETCH_COOLDOWN_MS,
    cacheMaxAge: KEYS_MAX_AGE_MS,
    [customFetch]: async (url, init) => {
      fetches++
      const headers = new Headers(init.headers)
      if (access !== undefined) headers.set('authorization', await access.authorization())
      const options = { ...init, headers, dispatcher } as unknown as Parameters<
        typeof undici.fetch
      >[1]
      const response = (await undici.fetch(url, options)) as unknown as Response
      if (response.status !== 200) {
        await response.body?.cancel()
        throw new Error(`answered HTTP ${response.status}${statusHint(response.status, access)}`)
      }
      return response
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
        await sleepOn(o.clock, KEY_REFETCH_COOLDOWN_MS)
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

/** jose's verdicts about the token itself, as opposed to failures to load the keys. */
function isTokenFault(err: unknown): boolean {
  return (
    err instanceof joseErrors.JWKSNoMatchingKey ||
    err instanceof joseErrors.JWKSMultipleMatchingKeys ||
    err instanceof joseErrors.JOSENotSupported ||
    err instanceof joseErrors.JOSEAlgNotAllowed
  )
}

/** What a refusal of the key-set fetch most likely means. */
function statusHint(status: number, access: ApiServerAccess | undefined): string {
  if (status !== 401 && status !== 403) return ''
  return access !== undefined
    ? ": the agent's service-account token was refused (is it bound to system:service-account-issuer-discovery?)"
    : ": for the API server's own key set use --token-jwks kubernetes, which sends the agent's service-account token"
}

function describe(err: unknown): string {
  if (err instanceof joseErrors.JWKSTimeout) return `no answer within ${FETCH_TIMEOUT_MS} ms`
  const e = err as { message?: string; cause?: { code?: string; message?: string } } | undefined
  const cause = e?.cause?.code ?? e?.cause?.message
  return `${e?.message ?? String(err)}${cause !== undefined ? ` (${cause})` : ''}`
}
