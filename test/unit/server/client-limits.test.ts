import { EventEmitter } from 'node:events'
import type { Socket } from 'node:net'
import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { createMetrics } from '../../../src/metrics/metrics.js'
import type { ClientLimitsOptions } from '../../../src/server/client-limits.js'
import { ClientLimits } from '../../../src/server/client-limits.js'
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

/** What admitConnection reads of a socket: its peer address and its 'close'. */
function socketFrom(address: string): Socket & { close(): void } {
  const s = new EventEmitter() as EventEmitter & { remoteAddress: string; close(): void }
  s.remoteAddress = address
  s.close = () => s.emit('close')
  return s as unknown as Socket & { close(): void }
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
  it("caps one source's open connections, counts the refusals, and frees a slot on close", async () => {
    const { limits, limited } = setup({ maxConnections: 3 })
    const open = [1, 2, 3].map(() => socketFrom('10.0.0.5'))
    for (const s of open) expect(limits.admitConnection(s)).toBe(true)
    expect(limits.admitConnection(socketFrom('10.0.0.5'))).toBe(false)
    expect(limits.admitConnection(socketFrom('10.0.0.6'))).toBe(true) // never another source's
    expect(limits.connectionsFrom('10.0.0.5')).toBe(3)
    open[0]!.close()
    expect(limits.connectionsFrom('10.0.0.5')).toBe(2)
    expect(limits.admitConnection(socketFrom('10.0.0.5'))).toBe(true)
    expect(await limited('connections')).toBe(1)
    for (const s of open.slice(1)) s.close()
  })

  it('forgets a source once its last connection closes', () => {
    const { limits } = setup({ maxConnections: 2 })
    const s = socketFrom('10.0.0.5')
    limits.admitConnection(s)
    s.close()
    expect(limits.connectionsFrom('10.0.0.5')).toBe(0)
  })

  it('0 is no cap', () => {
    const { limits } = setup({ maxConnections: 0 })
    for (let i = 0; i < 1000; i++) expect(limits.admitConnection(socketFrom('10.0.0.5'))).toBe(true)
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
