import { describe, expect, it } from 'vitest'
import { TurnShare } from '../../../src/server/turn-share.js'

/** Let the event loop finish this turn and run the next one's immediates. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('TurnShare', () => {
  it("answers a source at most perTurn times a turn; the rest wait, in order, for later turns' shares", async () => {
    const turns = new TurnShare(2)
    const ran: string[] = []
    const now = (name: string, source = 'flood'): boolean =>
      turns.take(source, () => ran.push(name)) && ran.push(`${name} now`) > 0
    expect([now('a'), now('b'), now('c'), now('d'), now('e')]).toEqual([
      true,
      true,
      false,
      false,
      false,
    ])
    expect(turns.waiting).toBe(3)
    expect(now('x', 'neighbour')).toBe(true) // another source has its own share
    await nextTurn()
    expect(ran).toEqual(['a now', 'b now', 'x now', 'c', 'd'])
    // A request of a source that still has some waiting queues behind them.
    expect(now('f')).toBe(false)
    await nextTurn()
    await nextTurn()
    expect(ran.slice(5)).toEqual(['e', 'f'])
    expect(turns.waiting).toBe(0)
  })

  it('shares later turns round-robin across sources', async () => {
    const turns = new TurnShare(1)
    const ran: string[] = []
    for (const source of ['a', 'b']) {
      for (let i = 0; i < 3; i++) {
        if (turns.take(source, () => ran.push(`${source}${i}`))) ran.push(`${source}${i}`)
      }
    }
    expect(ran).toEqual(['a0', 'b0'])
    await nextTurn()
    expect(ran).toEqual(['a0', 'b0', 'a1', 'b1'])
    await nextTurn()
    expect(ran).toEqual(['a0', 'b0', 'a1', 'b1', 'a2', 'b2'])
  })

  it('a new turn gives a source its full share again', async () => {
    const turns = new TurnShare(3)
    for (let i = 0; i < 3; i++) expect(turns.take('s', () => {})).toBe(true)
    expect(turns.take('s', () => {})).toBe(false)
    await nextTurn()
    await nextTurn()
    for (let i = 0; i < 3; i++) expect(turns.take('s', () => {})).toBe(true)
  })
})
