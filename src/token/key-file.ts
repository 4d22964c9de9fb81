// The issuer's keys from a file (--token-jwks FILE), for air-gapped nodes: read at start-up (an
// unreadable or broken file stops the start with one line), looked at again every few seconds
// and at once for a `kid` the keys lack, at most once per cooldown. A broken change is told and
// the keys as loaded before stay.

import { readFile } from 'node:fs/promises'
import { createLocalJWKSet, errors as joseErrors } from 'jose'
import type { JSONWebKeySet, JWTVerifyGetKey } from 'jose'
import { ConfigError } from '../config/values.js'
import type { TimerHandle } from '../util/clock.js'
import { sleepOn } from '../util/clock.js'
import type { IssuerKeys, IssuerKeysOptions } from './issuer-keys.js'

/** How often a key file is looked at for a change, ms. */
const FILE_CHECK_MS = 5000

export async function fileKeys(o: IssuerKeysOptions, cooldownMs: number): Promise<IssuerKeys> {
  let text: string
  try {
    text = await readFile(o.jwks, 'utf8')
  } catch (err) {
    throw new ConfigError(`--token-jwks ${o.jwks}: cannot read the file: ${message(err)}`)
  }
  let local: JWTVerifyGetKey
  try {
    local = createLocalJWKSet(parseKeySet(text))
  } catch (err) {
    throw new ConfigError(`--token-jwks ${o.jwks}: ${message(err)}`)
  }
  let loaded = text
  let rejected = ''
  let lastCheckMs = o.clock.now()
  let timer: TimerHandle | undefined
  let checking: Promise<void> | undefined
  const read = async (): Promise<void> => {
    lastCheckMs = o.clock.now()
    const next = await readFile(o.jwks, 'utf8').catch((err: unknown) => message(err))
    if (next === loaded || next === rejected) return
    try {
      local = createLocalJWKSet(parseKeySet(next))
      loaded = next
    } catch (err) {
      rejected = next
      o.onFileRejected?.(message(err))
    }
  }
  /** Look at the file (one look at a time, however many ask). */
  const check = (): Promise<void> => (checking ??= read().finally(() => (checking = undefined)))
  const schedule = (): void => {
    timer = o.clock.setTimer(() => void check().finally(schedule), FILE_CHECK_MS)
  }
  schedule()
  const resolve: JWTVerifyGetKey = async (header, token) => {
    try {
      return await local(header, token)
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey)) throw err
      // Perhaps a key added to the file since the last look: look again, at most once per cooldown.
      const wait = lastCheckMs + cooldownMs - o.clock.now()
      if (wait > 0) await sleepOn(o.clock, wait)
      await check()
      return local(header, token)
    }
  }
  return {
    resolve,
    warmUp: () => Promise.resolve(),
    close: () => {
      timer?.cancel()
      return Promise.resolve()
    },
  }
}

/** A JWKS document: an object with a `keys` array (jose checks each key when it is used). */
function parseKeySet(text: string): JSONWebKeySet {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new Error('is not JSON; expected a JWKS document {"keys": [...]}')
  }
  const keys = (value as { keys?: unknown } | null)?.keys
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new Error('is not a JWKS document; expected {"keys": [...]} with at least one key')
  }
  return value as JSONWebKeySet
}

function message(err: unknown): string {
  return (err as Error | undefined)?.message ?? String(err)
}
