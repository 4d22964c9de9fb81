// Reading an upstream's answer body without trusting its size: at most `limit` bytes, whatever
// its Content-Length says or omits.

import type { Dispatcher } from 'undici'
import type { ResponseHeaders } from './eks-auth-response.js'

/** Reads a body up to `limit` bytes; `undefined` (body destroyed) when it is larger. */
export async function readCapped(
  body: Dispatcher.ResponseData['body'],
  headers: ResponseHeaders,
  limit: number,
): Promise<Buffer | undefined> {
  const declared = Number(headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) {
    body.destroy()
    return undefined
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limit) {
      body.destroy()
      return undefined
    }
    chunks.push(chunk)
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size)
}
