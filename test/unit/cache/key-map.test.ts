// The key map: which token reads which entry, bounded by LRU over tokens; a slot lives while a
// token is bound to it, dropping it makes every one of its tokens miss, and renewals pass to
// another bound token when the renewing one is refused.

import { describe, expect, it } from 'vitest'
import type { CacheEntry } from '../../../src/cache/cache-entry.js'
import type { Slot } from '../../../src/cache/key-map.js'
import { KeyMap } from '../../../src/cache/key-map.js'
import type { CheckedToken } from '../../../src/token/validity.js'

function request(name: string, expMs = 1000): CheckedToken {
  return {
    token: `hdr.${name}.sig-${name}`,
    claims: {
      expMs,
      nbfMs: -Infinity,
      namespace: 'default',
      serviceAccount: 'app',
      podName: name,
      podUid: `uid-${name}`,
    },
  }
}

const entry = (n: number) => ({ body: Buffer.from(`entry-${n}`) }) as unknown as CacheEntry

function bind(map: KeyMap, r: CheckedToken, slot: Slot) {
  return map.bind(r, slot, undefined, 'd')
}

describe('KeyMap', () => {
  it('binds tokens to slots; replacing a slot entry changes it for every token', () => {
    const map = new KeyMap(10, () => {})
    const a = request('a')
    const b = request('b', 2000)
    const slot = map.put('p|1', 'pod', entry(1), a)
    bind(map, a, slot)
    bind(map, b, slot)
    expect(slot.tokens).toBe(2)
    expect(slot.renewWith).toBe(b) // the token that stays valid longest
    map.put('p|1', 'pod', entry(2), a)
    expect(map.binding(a.token)?.slot.entry?.body.toString()).toBe('entry-2')
    expect(map.binding(b.token)?.slot.entry?.body.toString()).toBe('entry-2')
    expect(slot.renewWith).toBe(b)
    expect(map.size).toBe(1)
  })

  it('finds only the exact token', () => {
    const map = new KeyMap(10, () => {})
    const a = request('a')
    bind(map, a, map.put('t|a', 'token', entry(1), a))
    expect(map.binding(a.token)).toBeDefined()
    expect(map.binding(`${a.token}x`)).toBeUndefined()
    expect(map.binding(`x${a.token.slice(1)}`)).toBeUndefined()
  })

  it('holds at most maxTokens tokens; a slot goes when its last token does', () => {
    const dropped: string[] = []
    const map = new KeyMap(2, (s) => dropped.push(s.key))
    const [a, b, c] = [request('a'), request('b'), request('c')]
    bind(map, a, map.put('t|a', 'token', entry(1), a))
    const shared = map.put('a|x', 'association', entry(2), b)
    bind(map, b, shared)
    bind(map, c, shared)
    expect(map.binding(a.token)).toBeUndefined() // least recently used
    expect(dropped).toEqual(['t|a'])
    expect(map.size).toBe(1)
    expect(map.slot('a|x')).toBe(shared)
  })

  it('a dropped slot answers none of its tokens; a new slot under its key starts afresh', () => {
    const map = new KeyMap(10, () => {})
    const [a, b] = [request('a'), request('b')]
    const slot = map.put('a|x', 'association', entry(1), a)
    bind(map, a, slot)
    bind(map, b, slot)
    expect(map.drop(slot)).toBe(true)
    expect(map.drop(slot)).toBe(false)
    expect(map.binding(a.token)?.slot.entry).toBeUndefined()
    const fresh = map.put('a|x', 'association', entry(2), b)
    expect(fresh).not.toBe(slot)
    bind(map, b, fresh)
    expect(map.binding(b.token)?.slot.entry?.body.toString()).toBe('entry-2')
    expect(map.binding(a.token)?.slot.entry).toBeUndefined()
  })

  it('hands renewals to the bound token that stays valid longest when the renewing one is refused', () => {
    const map = new KeyMap(10, () => {})
    const [old, mid, expired, newest] = [
      request('old', 5000),
      request('mid', 8000),
      request('expired', 100),
      request('newest', 9000),
    ]
    const slot = map.put('a|x', 'association', entry(1), old)
    const other = map.put('a|y', 'association', entry(2), old)
    for (const r of [old, mid, expired, newest]) bind(map, r, slot)
    bind(map, request('elsewhere', 99_000), other) // another slot's token is never picked
    expect(slot.renewWith).toBe(newest)
    expect(map.renewWithAnother(slot, newest.token, 500)).toBe(true)
    expect(slot.renewWith.token).toBe(mid.token)
    expect(map.binding(newest.token)).toBeUndefined()
    expect(slot.tokens).toBe(3)
    // at 6000 `old` has expired too: only `mid` is usable, and it is the one refused
    expect(map.renewWithAnother(slot, mid.token, 6000)).toBe(false)
    expect(map.binding(mid.token)?.slot).toBe(slot) // left for the caller to drop
    expect(map.drop(slot)).toBe(true)
    expect(map.renewWithAnother(slot, old.token, 500)).toBe(false) // a dropped slot
  })
})
