// ExchangeAnchor's schedule: which exchange it holds, and for how long. What holding one does on
// real V8 is tested in test/integration/exchange-anchor.test.ts.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { describe, expect, it } from 'vitest'
import { ExchangeAnchor } from '../../../src/server/exchange-anchor.js'

describe('ExchangeAnchor', () => {
  const pair = (n: number) =>
    [{ n } as unknown as IncomingMessage, { n } as unknown as ServerResponse] as const

  it('holds the first exchange, keeps it for everyMs, then takes the next one offered', () => {
    const anchor = new ExchangeAnchor(1000)
    expect(anchor.held()).toBeUndefined()
    const [a, b, c] = [pair(1), pair(2), pair(3)]
    anchor.offer(...a, 5_000)
    expect(anchor.held()).toEqual({ req: a[0], res: a[1] })
    anchor.offer(...b, 5_999)
    expect(anchor.held()!.req).toBe(a[0])
    anchor.offer(...c, 6_000)
    expect(anchor.held()).toEqual({ req: c[0], res: c[1] })
  })
})
