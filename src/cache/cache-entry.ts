// A cache entry: credentials as a pod is answered with them (the body pre-serialised), when they
// are served until and renewed, and who fetched them, built once from a source's answer.

import { InvalidUpstreamResponseError } from '../errors.js'
import type { CheckedToken } from '../token/validity.js'
import type { AssociationInfo, SourceAnswer } from '../upstream/types.js'
import { tokenDigest } from '../util/logger.js'
import { hitHeaders, serializeCredentials } from './credentials-body.js'
import type { ReuseReason, Scope } from './key-map.js'

export interface CacheEntry {
  /** Pre-serialised 200 body. */
  readonly body: Buffer
  /** Response headers for a hit, as a flat [name, value, ...] list. */
  readonly headers: readonly string[]
  /** Served while now < serveUntilMs (credential expiry - floor) and the token is usable. */
  readonly serveUntilMs: number
  readonly expirationMs: number
  readonly fetchedAtMs: number
  /** Renew in the background after this instant (Infinity: never worth renewing). */
  refreshAtMs: number
  refreshFailures: number
  /** For logs and reuse metrics: the token that fetched these credentials, and its pod. */
  readonly fetchedBy: Fetcher
  /** Whom the credentials were issued for, and the role (the assumed-role ARN). */
  readonly association: AssociationInfo
  readonly assumedRoleArn: string
  /** Which upstream issued the credentials (the audit line's `source`). */
  readonly issuedBy: string | undefined
}

/** The token that fetched an entry: its short digest, and the pod it names. */
export interface Fetcher {
  readonly digest: string
  readonly pod: string | undefined
  readonly podUid: string | undefined
}

export interface EntryTimes {
  nowMs: number
  /** Never serve credentials with less life left than this. */
  minTtlMs: number
  /** Renew at most this long after fetching. */
  maxRetentionMs: number
  /** Jitter in [0, 1). */
  random: () => number
}

/** The entry of a source's answer to `request`'s token. Throws when the credentials are too short-lived. */
export function buildEntry(
  request: CheckedToken,
  answer: SourceAnswer,
  digest: string,
  t: EntryTimes,
): CacheEntry {
  const { credentials, association } = answer
  const left = credentials.expirationMs - t.nowMs
  if (left <= t.minTtlMs) {
    throw new InvalidUpstreamResponseError(
      `fetched credentials are expired or will expire within the next ${(t.minTtlMs / 1000).toFixed(2)} seconds`,
    )
  }
  const body = serializeCredentials(credentials)
  const serveUntilMs = credentials.expirationMs - t.minTtlMs
  // Renew at fetch + min(retention, half the lifetime), with +-10 % jitter so that a node's
  // entries do not renew in lockstep; never when the entry ends first. (Whether a token is
  // still usable to renew with is seen then: a pod's newer token may have come by.)
  const base = Math.min(t.maxRetentionMs, left / 2)
  const refreshAt = t.nowMs + base * (0.9 + 0.2 * t.random())
  return {
    body,
    headers: hitHeaders(body),
    serveUntilMs,
    expirationMs: credentials.expirationMs,
    fetchedAtMs: t.nowMs,
    refreshAtMs: refreshAt < serveUntilMs ? refreshAt : Infinity,
    refreshFailures: 0,
    fetchedBy: { digest, pod: request.claims.podName, podUid: request.claims.podUid },
    association: {
      id: association.id,
      namespace: association.namespace ?? request.claims.namespace,
      serviceAccount: association.serviceAccount ?? request.claims.serviceAccount,
    },
    assumedRoleArn: credentials.assumedRoleArn,
    issuedBy: answer.issuedBy,
  }
}

/** The fetcher of a call in flight, as an entry will record it. */
export function fetcherOf(request: CheckedToken): Fetcher {
  return {
    digest: tokenDigest(request.token),
    pod: request.claims.podName,
    podUid: request.claims.podUid,
  }
}

/** A token reads what an earlier token of its own pod fetched (rotation), or another pod's. */
export function reuseReason(
  scope: Scope,
  fetcher: Fetcher,
  podUid: string | undefined,
): ReuseReason {
  return scope === 'pod' || (podUid !== undefined && fetcher.podUid === podUid)
    ? 'rotation'
    : 'shared'
}

/**
 * The role ARN of an assumed-role session ARN (`arn:P:sts::ACCOUNT:assumed-role/ROLE/SESSION` ->
 * `arn:P:iam::ACCOUNT:role/ROLE`; a role's path is not in a session ARN). Other text as it is.
 */
export function roleArnOf(assumedRoleArn: string): string {
  const m = /^arn:([^:]+):sts::(\d+):assumed-role\/([^/]+)\//.exec(assumedRoleArn)
  return m === null ? assumedRoleArn : `arn:${m[1]}:iam::${m[2]}:role/${m[3]}`
}

/** The role of an assumed-role ARN (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`). */
export function roleOf(assumedRoleArn: string): string {
  const m = /^arn:[^:]+:sts::(\d+):assumed-role\/([^/]+)\//.exec(assumedRoleArn)
  return m === null ? assumedRoleArn : `${m[1]}:${m[2]}`
}

export function roleChanged(a: CacheEntry, b: CacheEntry): boolean {
  return (
    a.association.id !== b.association.id || roleOf(a.assumedRoleArn) !== roleOf(b.assumedRoleArn)
  )
}
