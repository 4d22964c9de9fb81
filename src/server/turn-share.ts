// Each source address's share of one turn of the event loop. Node reads every connection that has
// a request waiting, and accepts one new connection, per turn: a pod flooding the agent from many
// connections at once would make each turn long, and everyone else (a neighbour's request, a new
// connection waiting in the kernel's accept queue) waits a whole turn. So a source is answered at
// most `perTurn` times per turn; its other requests wait for the next turns, taken round-robin
// with every other source's, and a closed-loop client (which sends its next request only after
// an answer) then sends only as fast as it is answered. While new connections keep arriving (one
// is accepted per turn), the share is smaller still, so that turns are short and a burst of
// connections is accepted quickly.

export interface TurnShareOptions {
  /** Answers per source per turn. */
  perTurn: number
  /** Answers per source in a turn that follows one in which a connection was accepted. */
  perTurnWhileConnecting: number
}

export class TurnShare {
  readonly #perTurn: number
  readonly #perTurnWhileConnecting: number
  /** This turn's share per source. */
  #share: number
  /** A connection was accepted during this turn. */
  #connected = false
  /** Answers given this turn, per source (cleared when the turn ends). */
  readonly #used = new Map<string, number>()
  /** Requests waiting for a later turn, per source, in turn order. */
  readonly #waiting = new Map<string, Array<() => void>>()
  #turnEnds = false

  constructor(o: TurnShareOptions) {
    this.#perTurn = o.perTurn
    this.#perTurnWhileConnecting = o.perTurnWhileConnecting
    this.#share = o.perTurn
  }

  /** Requests waiting for a later turn. */
  get waiting(): number {
    let n = 0
    for (const q of this.#waiting.values()) n += q.length
    return n
  }

  /** A connection was accepted (this turn and the next get the smaller share). */
  connected(): void {
    this.#connected = true
    this.#share = this.#perTurnWhileConnecting
    this.#endTurnSoon()
  }

  /**
   * True when `source` may be answered now (its share of this turn is not used up); otherwise
   * `later` runs in a later turn, in the source's round-robin order.
   */
  take(source: string, later: () => void): boolean {
    const used = this.#used.get(source) ?? 0
    this.#endTurnSoon()
    if (used < this.#share && !this.#waiting.has(source)) {
      this.#used.set(source, used + 1)
      return true
    }
    const q = this.#waiting.get(source)
    if (q === undefined) this.#waiting.set(source, [later])
    else q.push(later)
    return false
  }

  /** setImmediate: after this turn's I/O, once per turn with requests or connections. */
  #endTurnSoon(): void {
    if (this.#turnEnds) return
    this.#turnEnds = true
    setImmediate(() => this.#endTurn())
  }

  #endTurn(): void {
    this.#turnEnds = false
    this.#used.clear()
    this.#share = this.#connected ? this.#perTurnWhileConnecting : this.#perTurn
    this.#connected = false
    if (this.#waiting.size === 0) return
    // This turn's share of the waiting requests, round-robin over sources; whatever is left
    // waits for the next turn (an immediate queued now runs after the next poll for I/O).
    const runs: Array<() => void> = []
    for (let round = 0; round < this.#share && this.#waiting.size > 0; round++) {
      for (const [source, q] of this.#waiting) {
        runs.push(q.shift() as () => void)
        this.#used.set(source, (this.#used.get(source) ?? 0) + 1)
        if (q.length === 0) this.#waiting.delete(source)
      }
    }
    this.#endTurnSoon()
    for (const run of runs) run()
  }
}
