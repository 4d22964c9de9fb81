import { describe, expect, it } from 'vitest'
import { TurnShare } from '../../../src/server/turn-share.js'

/** Let the event loop finish this turn and run the next one's immediates. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('TurnShare', () => {
  it("answers a source at most perTurn times a turn; the rest wait, in order, for later turns' shares", async () => {
    const turns = new TurnShare({ perTurn: 2, perTurnWhileConnecting: 2 })
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
    const turns = new TurnShare({ perTurn: 1, perTurnWhileConnecting: 1 })
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
    const turns = new TurnShare({ perTurn: 3, perTurnWhileConnecting: 3 })
    for (let i = 0; i < 3; i++) expect(turns.take('s', () => {})).toBe(true)
    expect(turns.take('s', () => {})).toBe(false)
    await nextTurn()
    await nextTurn()
    for (let i = 0; i < 3; i++) expect(turns.take('s', () => {})).toBe(true)
  })

  it('while connections are accepted, a source gets the smaller share, this turn and the next', async () => {
    const turns = new TurnShare({ perTurn: 4, perTurnWhileConnecting: 1 })
    const ran: number[] = []
    turns.connected()
    const now = [0, 1, 2].map((i) => turns.take('flood', () => ran.push(i)))
    expect(now).toEqual([true, false, false])
    await nextTurn() // the turn after an accepted connection: 1 answer
    expect(ran).toEqual([1])
    await nextTurn() // no connection since: the full share again
    expect(ran).toEqual([1, 2])
    for (let i = 0; i < 4; i++) expect(turns.take('other', () => {})).toBe(true)
  })
})
