import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { createMetrics } from '../../../src/metrics/metrics.js'
import type { ClientLimitsOptions } from '../../../src/server/client-limits.js'
import { ClientLimits, MAX_HELD_CONNECTIONS } from '../../../src/server/client-limits.js'
import { ManualClock } from '../../../src/util/clock.js'

function setup(over: Partial<ClientLimitsOptions> = {}) {
  const clock = new ManualClock()
  const registry = new Registry()
  const metrics = createMetrics({ registry, version: 'test', processMetrics: false })
  const limits = new ClientLimits({
    clock,
    metrics,
    missRate: 10,
    maxConnections: 256,
    requestRate: 0,
    ...over,
  })
  const limited = async (reason: string): Promise<number> => {
    const m = (await registry.getMetricsAsJSON()).find(
      (x) => x.name === 'pod_identity_requests_limited_total',
    )
    return m?.values.find((v) => v.labels.reason === reason)?.value ?? 0
  }
  return { clock, limits, limited }
}

/** What admitConnection uses of a socket: its peer address, pause/resume, destroy and 'close'. */
interface FakeSocket {
  remoteAddress: string
  paused: boolean
  destroyed: boolean
  close(): void
}

function socketFrom(address: string): Socket & FakeSocket {
  const s = new EventEmitter() as EventEmitter & FakeSocket & Record<string, unknown>
  s.remoteAddress = address
  s.paused = false
  s.destroyed = false
  s.pause = () => ((s.paused = true), s)
  s.resume = () => ((s.paused = false), s)
  s.close = () => s.emit('close')
  s.destroy = () => {
    s.destroyed = true
    s.emit('close')
    return s
  }
  return s as unknown as Socket & FakeSocket
}

describe('ClientLimits, requests that would start an upstream call', () => {
  it('lets a source start 20 at once and 10 per second, then answers 429 with Retry-After', async () => {
    const { clock, limits, limited } = setup()
    for (let i = 0; i < 20; i++) expect(limits.takeMiss('10.0.0.5')).toBeUndefined()
    const refused = limits.takeMiss('10.0.0.5')
    expect(refused?.statusCode).toBe(429)
    expect(refused?.code).toBe('TooManyRequests')
    expect(refused?.retryAfterSeconds).toBe(1)
    expect(refused?.message).toBe(
      'Too many requests for new credentials from this pod (at most 10 per second per source address): retry after 1 s',
    )
    expect(limits.takeMiss('10.0.0.6')).toBeUndefined() // another pod is not affected
    clock.advance(100)
    expect(limits.takeMiss('10.0.0.5')).toBeUndefined()
    expect(limits.takeMiss('10.0.0.5')).toBeDefined()
    expect(await limited('miss_rate')).toBe(2)
  })

  it('a rate of 0 is no limit; an unknown address is never limited', () => {
    const { limits } = setup({ missRate: 0 })
    for (let i = 0; i < 1000; i++) expect(limits.takeMiss('10.0.0.5')).toBeUndefined()
    const on = setup().limits
    for (let i = 0; i < 100; i++) expect(on.takeMiss(undefined)).toBeUndefined()
  })

  it('a slow rate says how long to wait', () => {
    const { limits } = setup({ missRate: 0.1 })
    expect(limits.takeMiss('10.0.0.5')).toBeUndefined()
    expect(limits.takeMiss('10.0.0.5')?.retryAfterSeconds).toBe(10)
  })
})

describe('ClientLimits, connections', () => {
  it("serves a source's first 3 connections, holds the 4th unread until one of them closes, never another source's", async () => {
    const { limits, limited } = setup({ maxConnections: 3 })
    const served = [1, 2, 3].map(() => socketFrom('10.0.0.5'))
    for (const s of served) limits.admitConnection(s)
    expect(served.some((s) => s.paused)).toBe(false)
    const fourth = socketFrom('10.0.0.5')
    limits.admitConnection(fourth)
    await new Promise((resolve) => process.nextTick(resolve))
    expect(fourth.paused).toBe(true)
    expect(fourth.destroyed).toBe(false)
    expect(limits.held).toBe(1)
    const other = socketFrom('10.0.0.6')
    limits.admitConnection(other)
    expect(other.paused).toBe(false)
    expect(limits.connectionsFrom('10.0.0.5')).toBe(3)
    served[0]!.close()
    expect(fourth.paused).toBe(false) // served now, in the place of the one that closed
    expect(limits.held).toBe(0)
    expect(limits.connectionsFrom('10.0.0.5')).toBe(3)
    expect(await limited('connections')).toBe(1)
  })

  it('a held connection that closes is forgotten; a source with none left is forgotten', () => {
    const { limits } = setup({ maxConnections: 1 })
    const served = socketFrom('10.0.0.5')
    const held = socketFrom('10.0.0.5')
    limits.admitConnection(served)
    limits.admitConnection(held)
    held.destroy()
    expect(limits.held).toBe(0)
    served.close()
    expect(limits.connectionsFrom('10.0.0.5')).toBe(0)
    const next = socketFrom('10.0.0.5')
    limits.admitConnection(next)
    expect(next.paused).toBe(false)
  })

  it(`holds at most ${MAX_HELD_CONNECTIONS} connections in all: past that the oldest held one is closed`, () => {
    const { limits } = setup({ maxConnections: 1 })
    limits.admitConnection(socketFrom('10.0.0.5'))
    const held = Array.from({ length: MAX_HELD_CONNECTIONS + 1 }, () => socketFrom('10.0.0.5'))
    for (const s of held) limits.admitConnection(s)
    expect(held[0]!.destroyed).toBe(true)
    expect(held.filter((s) => s.destroyed)).toHaveLength(1)
    expect(limits.held).toBe(MAX_HELD_CONNECTIONS)
  })

  it('releaseHeld() serves every held connection (on shutdown)', () => {
    const { limits } = setup({ maxConnections: 1 })
    limits.admitConnection(socketFrom('10.0.0.5'))
    const held = [1, 2].map(() => socketFrom('10.0.0.5'))
    for (const s of held) limits.admitConnection(s)
    limits.releaseHeld()
    expect(held.map((s) => s.paused)).toEqual([false, false])
    expect(limits.held).toBe(0)
  })

  it('0 is no cap', () => {
    const { limits } = setup({ maxConnections: 0 })
    for (let i = 0; i < 1000; i++) {
      const s = socketFrom('10.0.0.5')
      limits.admitConnection(s)
      expect(s.paused).toBe(false)
    }
  })
})

describe('ClientLimits, the agent-wide request rate', () => {
  it("is off by default; at 1000/s it takes the reference's burst of 500, then 429", async () => {
    expect(setup().limits.limitsRequests).toBe(false)
    expect(setup().limits.takeRequest()).toBeUndefined()
    const { clock, limits, limited } = setup({ requestRate: 1000 })
    expect(limits.limitsRequests).toBe(true)
    for (let i = 0; i < 500; i++) expect(limits.takeRequest()).toBeUndefined()
    const refused = limits.takeRequest()
    expect(refused?.statusCode).toBe(429)
    expect(refused?.message).toBe(
      'Too many requests to this agent (--max-request-rate): retry after 1 s',
    )
    clock.advance(1)
    expect(limits.takeRequest()).toBeUndefined()
    expect(await limited('request_rate')).toBe(1)
  })
})
