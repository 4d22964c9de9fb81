// Fake temporary credentials and ids in AWS's shapes, for the mocks' answers.

import { randomBytes } from 'node:crypto'

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/** Fake temporary credentials in AWS's shapes: ASIA key id, 40-character secret, session token. */
export function fakeCredentials(): {
  accessKeyId: string
  secretAccessKey: string
  sessionToken: string
} {
  const rnd = randomBytes(16 + 30 + 300)
  let accessKeyId = 'ASIA'
  for (let i = 0; i < 16; i++) accessKeyId += BASE32[(rnd[i] as number) & 31]
  return {
    accessKeyId,
    secretAccessKey: rnd.subarray(16, 46).toString('base64'),
    sessionToken: `IQoJb3JpZ2luX2Vj${rnd.subarray(46).toString('base64')}`,
  }
}

/** Uppercase base32 characters derived from a name (stable role ids). */
export function stableBase32(digest: Uint8Array, length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += BASE32[(digest[i] as number) & 31]
  return out
}
