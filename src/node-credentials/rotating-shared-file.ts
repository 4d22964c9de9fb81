// --rotate-credentials: hybrid nodes get their node credentials from a shared credentials file that
// another process rewrites. Like the reference agent, re-read it (profile AWS_PROFILE or
// "default", file AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials) at most once a minute.

import { NodeCredentialsError } from '../errors.js'
import type { NodeCredentials, NodeCredentialsProvider } from './types.js'
import type { Clock } from '../util/clock.js'

export interface RotatingSharedFileOptions {
  clock: Clock
  /** How long a read is reused, ms. Default 60 000 (the reference's rotation interval). */
  rereadMs?: number
  profile?: string
}

export function createRotatingSharedFileProvider(
  o: RotatingSharedFileOptions,
): NodeCredentialsProvider {
  const rereadMs = o.rereadMs ?? 60_000
  let cached: { creds: NodeCredentials; readAtMs: number } | undefined
  let pending: Promise<NodeCredentials> | undefined

  async function read(): Promise<NodeCredentials> {
    const { fromIni } = await import('@aws-sdk/credential-provider-ini')
    const profile = o.profile ?? process.env.AWS_PROFILE ?? 'default'
    try {
      return await fromIni({ profile, ignoreCache: true })()
    } catch (err) {
      const m = err instanceof Error ? err.message.split('\n')[0] : String(err)
      throw new NodeCredentialsError(
        `unable to read the node's shared credentials file (profile ${profile}): ${m}`,
        { cause: err },
      )
    }
  }

  return () => {
    const now = o.clock.now()
    if (cached !== undefined && now - cached.readAtMs < rereadMs)
      return Promise.resolve(cached.creds)
    pending ??= read().then(
      (creds) => {
        cached = { creds, readAtMs: o.clock.now() }
        pending = undefined
        return creds
      },
      (err: unknown) => {
        pending = undefined
        // A broken rewrite keeps the last good credentials until they would have been re-read twice.
        if (cached !== undefined && o.clock.now() - cached.readAtMs < 2 * rereadMs)
          return cached.creds
        throw err
      },
    )
    return pending
  }
}
