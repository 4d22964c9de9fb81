// The 200 body, serialised once per fetch so that a cache hit writes bytes and nothing else.

import type { IssuedCredentials } from '../upstream/types.js'

/**
 * RFC 3339 UTC ending in `Z`, trailing zero fractions dropped like Go's RFC3339Nano
 * (`2024-01-01T01:00:00Z`, `2024-01-01T01:00:00.5Z`). The JS SDK rejects `+00:00`.
 */
export function formatExpiration(ms: number): string {
  const iso = new Date(ms).toISOString() // always YYYY-MM-DDTHH:mm:ss.sssZ
  return iso.replace(/\.?0+Z$/, 'Z').replace(/\.Z$/, 'Z')
}

/** `{"AccessKeyId","SecretAccessKey","Token","AccountId","Expiration"}` in this exact order. */
export function serializeCredentials(c: IssuedCredentials): Buffer {
  return ownBuffer(
    JSON.stringify({
      AccessKeyId: c.accessKeyId,
      SecretAccessKey: c.secretAccessKey,
      Token: c.sessionToken,
      AccountId: c.accountId,
      Expiration: formatExpiration(c.expirationMs),
    }),
  )
}

/** The headers of a hit that writes `body`, as a flat [name, value, ...] list. */
export function hitHeaders(body: Buffer): string[] {
  return ['Content-Type', 'application/json', 'Content-Length', String(body.length)]
}

/**
 * A Buffer with its own memory. Buffer.from(string) carves small buffers out of a shared 8 KiB
 * pool, so one long-lived cached body would pin a whole slab of short-lived neighbours.
 */
export function ownBuffer(text: string): Buffer {
  const b = Buffer.allocUnsafeSlow(Buffer.byteLength(text))
  b.write(text)
  return b
}
