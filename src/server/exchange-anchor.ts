// Keeps one recently served exchange (its request and response objects) alive, replaced at most
// once a second, so that a full GC while the agent is idle does not throw away the hit path's
// optimised code.
//
// V8's optimised code for Node's HTTP path (and the handler it inlines) embeds the hidden classes
// (maps) of the per-request objects (IncomingMessage, ServerResponse, their stream states) and
// holds them weakly. Once a burst ends and its connections close, none of those objects is alive.
// A regular full GC still keeps recently used maps; a memory-reducing one does not. On Node 22+
// those run at idle after a burst (V8's memory reducer, and the agent's idle trimmer,
// util/v8-memory.ts): they free the maps, and every function whose code embedded one is
// deoptimised ("embedded weak objects cleared" in --trace-deopt), 65 to 72 of them on Node 24,
// the handler among them. The next burst runs in the interpreter and baseline code while TurboFan
// compiles some 200 functions again: on Node 24, 4 hot-path benchmark rounds in 10 ran at
// 1.26-1.39 x the bare server's CPU per request with a p99.9 of 8-30 ms, against 1.02-1.13 and
// 2-12 ms for the others (bench/README.md, Results). Node 20's V8 keeps the maps.
//
// One exchange kept alive keeps its objects' maps, and the maps they were built from (a map
// holds its parent): 10 to 13 functions are deoptimised then, for objects no exchange holds
// (socket write requests, iterators). The cost on the hit path is one comparison with the clock
// value it reads anyway; the objects held are replaced once a second, so what they keep from
// dying young is a few KB a second. They hold nothing the cache does not (the token is in both).

import type { IncomingMessage, ServerResponse } from 'node:http'

export class ExchangeAnchor {
  private nextMs = 0
  private req: IncomingMessage | undefined
  private res: ServerResponse | undefined

  private readonly everyMs: number

  constructor(everyMs = 1000) {
    this.everyMs = everyMs
  }

  /** Hold this exchange if the one held is at least everyMs old (nowMs from the agent's clock). */
  offer(req: IncomingMessage, res: ServerResponse, nowMs: number): void {
    if (nowMs < this.nextMs) return
    this.nextMs = nowMs + this.everyMs
    this.req = req
    this.res = res
  }

  /** The exchange held, for tests. */
  held(): { req: IncomingMessage; res: ServerResponse } | undefined {
    return this.req === undefined || this.res === undefined
      ? undefined
      : { req: this.req, res: this.res }
  }
}
