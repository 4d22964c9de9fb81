// The Map key of a cached token, built without hashing the token on the hot path.

/**
 * A number made of the token's length and its last 7 characters (for a JWT, 42 bits of its
 * signature), exact below 2^53. A string key would be hashed on every lookup (a token is about
 * 1 KB and a fresh string each request); a number costs a few instructions. The key only finds a
 * candidate: a hit also requires the entry's token to equal the request's, so two tokens sharing
 * a key can only cost each other a miss, and a forged token never reads another's entry.
 */
export function cacheKey(token: string): number {
  const n = token.length
  // 7 bits per character (c & 127: base64url and every other printable ASCII character keep
  // their own value), 49 bits in all, times 16 for the length's low 4 bits: below 2^53.
  let k = n & 15
  for (let i = n < 7 ? 0 : n - 7; i < n; i++) k = k * 128 + (token.charCodeAt(i) & 127)
  return k
}
