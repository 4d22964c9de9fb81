// What the cache tells its log: credentials fetched, a fetch failed, an entry evicted, an
// association's role changed, and (at debug) a new token served from another token's entry. Only
// short token digests, never a token or a secret.

import type { AgentError } from '../errors.js'
import { CallDroppedError } from '../errors.js'
import type { CheckedToken } from '../token/validity.js'
import type { Logger } from '../util/logger.js'
import { tokenDigest } from '../util/logger.js'
import type { CacheEntry, Fetcher } from './cache-entry.js'
import { roleArnOf, roleOf } from './cache-entry.js'
import type { ScopedRequest } from './entry-scope.js'
import type { ReuseReason } from './key-map.js'

/** Why a call was made: a pod asked, or an entry was renewed in the background. */
export type FetchReason = 'request' | 'refresh'

export class CacheEvents {
  readonly #log: Logger

  constructor(log: Logger) {
    this.#log = log
  }

  fetched(scoped: ScopedRequest, entry: CacheEntry, reason: FetchReason, durationMs: number): void {
    this.#log.info(
      {
        event: 'credentials_fetched',
        reason,
        entry: scoped.scope,
        tokenDigest: entry.fetchedBy.digest,
        namespace: entry.association.namespace,
        serviceAccount: entry.association.serviceAccount,
        pod: entry.fetchedBy.pod,
        associationId: entry.association.id,
        roleArn: roleArnOf(entry.assumedRoleArn),
        source: entry.issuedBy,
        expiration: new Date(entry.expirationMs).toISOString(),
        durationMs,
      },
      'fetched credentials',
    )
  }

  /** A renewal or a later fetch named another association or role than the entry it replaced. */
  roleChanged(scoped: ScopedRequest, from: CacheEntry, to: CacheEntry, tokens: number): void {
    this.#log.info(
      {
        event: 'association_changed',
        entry: scoped.scope,
        namespace: to.association.namespace,
        serviceAccount: to.association.serviceAccount,
        from: { associationId: from.association.id, role: roleOf(from.assumedRoleArn) },
        to: { associationId: to.association.id, role: roleOf(to.assumedRoleArn) },
        tokens,
      },
      'the association or role changed: every token of the entry is served the new credentials',
    )
  }

  evicted(scoped: ScopedRequest, digest: string, code: string): void {
    this.#log.info(
      { event: 'cache_evicted', entry: scoped.scope, tokenDigest: digest, code },
      'evicted credentials',
    )
  }

  /** A renewal's token alone was refused: the entry stays, renewed with another bound token. */
  renewerRefused(scoped: ScopedRequest, digest: string, code: string, next: CheckedToken): void {
    this.#log.info(
      {
        event: 'renewal_token_refused',
        entry: scoped.scope,
        tokenDigest: digest,
        pod: scoped.request.claims.podName,
        code,
        next: { pod: next.claims.podName, tokenDigest: tokenDigest(next.token) },
      },
      "the token renewals sent was refused: the credentials stay, and are renewed with another pod's token",
    )
  }

  failed(
    scoped: ScopedRequest,
    e: AgentError,
    digest: string,
    reason: FetchReason,
    durationMs: number,
  ): void {
    const { claims } = scoped.request
    // A call dropped because nobody waited for it is routine under a flood: not worth a warning.
    const level = e instanceof CallDroppedError ? 'debug' : 'warn'
    this.#log[level](
      {
        event: 'credentials_fetch_failed',
        reason,
        tokenDigest: digest,
        namespace: claims.namespace,
        serviceAccount: claims.serviceAccount,
        pod: claims.podName,
        status: e.statusCode,
        code: e.code,
        error: e.message,
        durationMs,
      },
      'fetching credentials failed',
    )
  }

  /** At debug: a new token answered from credentials another token fetched, and whose. */
  saved(scoped: ScopedRequest, fetcher: Fetcher, reason: ReuseReason): void {
    if (!this.#log.isLevelEnabled('debug')) return
    const { claims } = scoped.request
    this.#log.debug(
      {
        event: reason === 'rotation' ? 'credentials_kept_across_rotation' : 'credentials_shared',
        tokenDigest: tokenDigest(scoped.request.token),
        pod: claims.podName,
        namespace: claims.namespace,
        serviceAccount: claims.serviceAccount,
        fetchedBy: { pod: fetcher.pod, tokenDigest: fetcher.digest },
      },
      reason === 'rotation'
        ? "served a pod's new token the credentials its earlier token fetched"
        : 'served credentials another pod of the association fetched',
    )
  }
}
