// A burst of keep-alive requests through undici: `connections` clients at once, each sending
// `perConnection` requests one after another on its own connection, as a busy node's pods do.

import { Agent, request } from 'undici'

export interface BurstOptions {
  connections: number
  perConnection: number
  headers?: Record<string, string>
  /** Called after each answer with the number answered so far. */
  onAnswer?: (answered: number) => Promise<void> | void
}

/** Resolves the number of answers; rejects on the first status other than 200. */
export async function keepAliveBurst(url: string, o: BurstOptions): Promise<number> {
  const dispatcher = new Agent({ connections: o.connections })
  let answered = 0
  try {
    const client = async (): Promise<void> => {
      for (let i = 0; i < o.perConnection; i++) {
        const res = await request(url, { dispatcher, headers: o.headers })
        await res.body.arrayBuffer()
        if (res.statusCode !== 200) {
          throw new Error(`answer ${answered + 1}: status ${res.statusCode}, expected 200`)
        }
        answered++
        await o.onAnswer?.(answered)
      }
    }
    await Promise.all(Array.from({ length: o.connections }, client))
  } finally {
    await dispatcher.close()
  }
  return answered
}
