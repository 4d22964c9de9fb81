// The key map: which token reads which entry, bounded by LRU over tokens; a slot lives while a
// token is bound to it, and dropping it makes every one of its tokens miss.

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
})
