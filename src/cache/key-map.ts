// Which token reads which credential entry, kept apart from the entries themselves. A token is
// bound to a slot: the place of one entry, keyed by the token itself (unverified tokens), by a
// pod's UID (verified tokens, across rotation) or by an association (verified tokens, shared).
// Renewing or replacing a slot's entry changes it for every token bound to it. Tokens are
// bounded by LRU (--max-cache-size); a slot lives while a token is bound to it.

import { LRUCache } from 'lru-cache'
import type { TokenClaims } from '../token/parse-token.js'
import type { CheckedToken } from '../token/validity.js'
import { isTokenUsable } from '../token/validity.js'
import { cacheKey } from './cache-key.js'
import type { CacheEntry } from './cache-entry.js'

/** What a slot is keyed by. */
export type Scope = 'token' | 'pod' | 'association'

/** Why a token reads an entry another token fetched (the reuse metrics' `reason`). */
export const REUSE_REASONS = ['rotation', 'shared'] as const
export type ReuseReason = (typeof REUSE_REASONS)[number]

/** The place of one credential entry, and what renews it. */
export interface Slot {
  readonly key: string
  readonly scope: Scope
  /** The credentials, replaced whole by a renewal or a changed association; undefined once dropped. */
  entry: CacheEntry | undefined
  /** The token renewals send: the newest one bound (the one that expires last). */
  renewWith: CheckedToken
  /** Tokens bound to this slot. */
  tokens: number
}

/** A token as a pod presents it, and the slot whose entry it reads. */
export interface TokenBinding {
  readonly token: string
  readonly claims: TokenClaims
  readonly slot: Slot
  /** Set when this token reads an entry another token fetched. */
  readonly reuse: ReuseReason | undefined
  /** Short digest of the token, for logs. */
  readonly digest: string
  /** The end of this token's trace line for a hit, built on its first traced hit. */
  traceTail: string | undefined
}

export class KeyMap {
  readonly #bindings: LRUCache<number, TokenBinding>
  readonly #slots = new Map<string, Slot>()
  readonly #onDropped: (slot: Slot) => void

  /** `onDropped`: a slot was let go (no token bound to it any more, or dropped). */
  constructor(maxTokens: number, onDropped: (slot: Slot) => void) {
    this.#onDropped = onDropped
    this.#bindings = new LRUCache<number, TokenBinding>({
      max: maxTokens,
      dispose: (b) => this.#unbind(b.slot),
    })
  }

  /** Slots held (credential entries). */
  get size(): number {
    return this.#slots.size
  }

  /** Tokens held (each bound to a slot). */
  get tokens(): number {
    return this.#bindings.size
  }

  /** The hot path: the binding of exactly this token (a Map lookup by a number, one compare). */
  binding(token: string): TokenBinding | undefined {
    const b = this.#bindings.get(cacheKey(token))
    return b !== undefined && b.token === token ? b : undefined
  }

  slot(key: string): Slot | undefined {
    return this.#slots.get(key)
  }

  /** Store an entry in its slot (replacing the entry of every token bound to it), or a new slot. */
  put(key: string, scope: Scope, entry: CacheEntry, renewWith: CheckedToken): Slot {
    const slot = this.#slots.get(key)
    if (slot !== undefined) {
      slot.entry = entry
      keepNewest(slot, renewWith)
      return slot
    }
    const created: Slot = { key, scope, entry, renewWith, tokens: 0 }
    this.#slots.set(key, created)
    return created
  }

  /** Bind a token to a slot (it then reads that slot's entry), unless it already is. */
  bind(
    request: CheckedToken,
    slot: Slot,
    reuse: ReuseReason | undefined,
    digest: string,
  ): TokenBinding {
    const existing = this.binding(request.token)
    if (existing?.slot === slot) return existing
    const b = newBinding(request, slot, reuse, digest)
    slot.tokens++
    keepNewest(slot, request)
    this.#bindings.set(cacheKey(request.token), b)
    return b
  }

  /**
   * The token a slot renews with was refused for itself alone (its pod deleted): unbind it, and
   * renew with the bound token that stays valid longest. False when no other usable token is bound
   * (the caller then drops the slot). A scan of the tokens, on this rare path only.
   */
  renewWithAnother(slot: Slot, refused: string, nowMs: number): boolean {
    if (this.#slots.get(slot.key) !== slot) return false
    let next: TokenBinding | undefined
    for (const other of this.#bindings.values()) {
      if (other.slot !== slot || other.token === refused || !isTokenUsable(other.claims, nowMs)) {
        continue
      }
      if (next === undefined || other.claims.expMs > next.claims.expMs) next = other
    }
    if (next === undefined) return false
    slot.renewWith = { token: next.token, claims: next.claims }
    if (this.binding(refused)?.slot === slot) this.#bindings.delete(cacheKey(refused))
    return true
  }

  /** Let a slot go now (an upstream's final refusal): its tokens miss from now on. */
  drop(slot: Slot): boolean {
    if (this.#slots.get(slot.key) !== slot) return false
    this.#slots.delete(slot.key)
    slot.entry = undefined
    this.#onDropped(slot)
    return true
  }

  #unbind(slot: Slot): void {
    slot.tokens--
    if (slot.tokens <= 0) this.drop(slot)
  }
}

/**
 * A binding, built as one literal so that every binding has the same shape (the hot path reads
 * it; an object spread made them slow to read: bench/README.md, "Cache").
 */
export function newBinding(
  request: CheckedToken,
  slot: Slot,
  reuse: ReuseReason | undefined,
  digest: string,
): TokenBinding {
  return { token: request.token, claims: request.claims, slot, reuse, digest, traceTail: undefined }
}

/** Renewals send the token that stays valid longest. */
function keepNewest(slot: Slot, request: CheckedToken): void {
  if (request.claims.expMs >= slot.renewWith.claims.expMs) slot.renewWith = request
}
