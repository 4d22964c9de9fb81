// Keeps one recently served exchange (its request and response objects) alive, replaced at most
// once a second, so that a full GC while the agent is idle does not throw away the hit path's
// optimised code.
//
// V8's optimised code for Node's HTTP path (and the handler it inlines) embeds the hidden classes
// (maps) of the per-request objects (IncomingMessage, ServerResponse, their stream states) and
// holds them weakly. Once a burst ends and its connections close, none of those objects is alive;
// the full GCs V8's memory reducer runs at idle then free the maps, and every function whose code
// embedded one is deoptimised ("embedded weak objects cleared" in --trace-deopt): about 65 of
// them on Node 24, the handler among them. The next burst runs in the interpreter and baseline
// code while TurboFan compiles some 200 functions again: on Node 24 a third of the hot-path
// benchmark's rounds ran at 1.26-1.39 x the bare server's CPU per request with a p99.9 of 25-30
// ms, against 1.02-1.14 and 2-8 ms for the others (bench/README.md, Results).
//
// One exchange kept alive keeps its objects' maps, and the maps they were built from (a map
// holds its parent). The cost on the hit path is one comparison; the objects held are replaced
// once a second, so what they keep from dying young is a few KB a second.

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
