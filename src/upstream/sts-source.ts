// The STS credential source: AssumeRoleWithWebIdentity through @aws-sdk/client-sts, unsigned, with
// the pod's own token (protocol.md 4). The role comes from the associations file by the token's
// namespace and service account; without an entry the pod gets 404 NoAssociation and nothing is
// called. The session name has EKS's shape, `eks-<cluster>-<pod>-<random>`, cut to STS's 64
// characters. Requests go through undici (proxy-aware), retried as retry.ts says.

import type { Dispatcher } from 'undici'
import type { AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts'
import type { Association } from '../associations/associations.js'
import { associationIdOf } from '../associations/associations.js'
import { AgentError, NoAssociationError } from '../errors.js'
import type { CheckedToken } from '../token/validity.js'
import type { Clock } from '../util/clock.js'
import type { RetryPolicy } from './retry.js'
import { parseStsAnswer, stsError } from './sts-response.js'
import { attemptSignal, callerAbortError, withRetries } from './retry.js'
import type { CredentialSource, FetchOptions, SourceAnswer } from './types.js'
import { undiciRequestHandler } from './undici-handler.js'

/** What the source needs of the associations: the entry of a namespace and service account. */
export interface AssociationsLookup {
  find(namespace: string, serviceAccount: string): Association | undefined
}

/** What the `onAttempt` hook sees of one STS attempt (as EksAuthAttempt). */
export interface StsAttempt {
  durationMs: number
  outcome: 'success' | 'error'
  code?: string | undefined
}

export interface StsSourceOptions {
  region: string
  /** --sts-endpoint; else AWS_ENDPOINT_URL_STS, else the region's STS endpoint (the SDK's rules). */
  endpoint?: string | undefined
  associations: AssociationsLookup
  /** For session names; may be absent on clusters that are not EKS. */
  clusterName?: string | undefined
  /** Credential lifetime when the association names none, seconds (900-43200). */
  defaultDurationSeconds: number
  clock: Clock
  /** Budget of one attempt, ms. Default 1000. */
  attemptTimeoutMs?: number | undefined
  /** Default: an undici EnvHttpProxyAgent owned and closed by this source. */
  dispatcher?: Dispatcher | undefined
  random?: (() => number) | undefined
  onAttempt?: ((a: StsAttempt) => void) | undefined
}

/** STS's limit on RoleSessionName, and the characters it allows. */
const MAX_SESSION_NAME = 64
const SESSION_NAME_CHAR = /[^\w+=,.@-]/g
const SUFFIX_CHARS = 10

/** `eks-<cluster>-<pod>-<random>`, cut to 64 characters, only characters STS allows. */
export function sessionName(
  clusterName: string | undefined,
  podName: string | undefined,
  random: () => number,
): string {
  let suffix = ''
  while (suffix.length < SUFFIX_CHARS) suffix += Math.floor(random() * 36).toString(36)
  const prefix = ['eks', clusterName, podName]
    .filter((p): p is string => p !== undefined && p !== '')
    .join('-')
    .replace(SESSION_NAME_CHAR, '-')
  return `${prefix.slice(0, MAX_SESSION_NAME - SUFFIX_CHARS - 1)}-${suffix}`
}

/** What #load builds once: the SDK client, its dispatcher, and the one command the source sends. */
interface StsTransport {
  client: STSClient
  dispatcher: Dispatcher
  /** Whether the dispatcher is this source's to close. */
  owned: boolean
  AssumeRoleWithWebIdentityCommand: typeof AssumeRoleWithWebIdentityCommand
}

export class StsSource implements CredentialSource {
  readonly #o: StsSourceOptions
  readonly #retry: RetryPolicy
  #client: Promise<StsTransport> | undefined

  constructor(o: StsSourceOptions) {
    this.#o = o
    this.#retry = {
      clock: o.clock,
      maxAttempts: 3,
      attemptTimeoutMs: o.attemptTimeoutMs ?? 1000,
      totalTimeoutMs: 3000,
      random: o.random ?? Math.random,
    }
  }

  async fetch(request: CheckedToken, options: FetchOptions = {}): Promise<SourceAnswer> {
    const { namespace, serviceAccount, podName } = request.claims
    const a =
      namespace === undefined || serviceAccount === undefined
        ? undefined
        : this.#o.associations.find(namespace, serviceAccount)
    if (a === undefined) throw new NoAssociationError(namespace, serviceAccount)
    const input = {
      RoleArn: a.roleArn,
      RoleSessionName: sessionName(this.#o.clusterName, podName, this.#retry.random),
      WebIdentityToken: request.token,
      DurationSeconds: a.durationSeconds ?? this.#o.defaultDurationSeconds,
    }
    const answer = await withRetries(
      this.#retry,
      'STS',
      () => this.#attempt(input, request.token, options.signal),
      options.signal,
    )
    return { ...answer, association: { id: associationIdOf(a), namespace, serviceAccount } }
  }

  warmUp(): Promise<void> {
    return this.#load().then(
      () => undefined,
      () => undefined,
    )
  }

  async close(): Promise<void> {
    const loaded = await this.#client?.catch(() => undefined)
    if (loaded === undefined) return
    loaded.client.destroy()
    if (loaded.owned) await loaded.dispatcher.close()
  }

  /** The SDK client, built once (its modules load on first use). */
  #load(): Promise<StsTransport> {
    this.#client ??= (async () => {
      const [{ STSClient, AssumeRoleWithWebIdentityCommand }, undici] = await Promise.all([
        import('@aws-sdk/client-sts'),
        import('undici'),
      ])
      const owned = this.#o.dispatcher === undefined
      const dispatcher =
        this.#o.dispatcher ??
        new undici.EnvHttpProxyAgent({
          connect: { timeout: 500 },
          keepAliveTimeout: 20_000,
        })
      const client = new STSClient({
        region: this.#o.region,
        ...(this.#o.endpoint !== undefined ? { endpoint: this.#o.endpoint } : {}),
        // Retries are ours (retry.ts): the SDK's would retry throttling too.
        maxAttempts: 1,
        requestHandler: undiciRequestHandler(dispatcher, this.#retry.attemptTimeoutMs),
        // AssumeRoleWithWebIdentity is unsigned: the node's credentials are never needed.
        credentials: () => Promise.reject(new Error('AssumeRoleWithWebIdentity is unsigned')),
      })
      return { client, dispatcher, owned, AssumeRoleWithWebIdentityCommand }
    })()
    return this.#client
  }

  async #attempt(
    input: {
      RoleArn: string
      RoleSessionName: string
      WebIdentityToken: string
      DurationSeconds: number
    },
    token: string,
    signal: AbortSignal | undefined,
  ): Promise<Omit<SourceAnswer, 'association'>> {
    const { client, AssumeRoleWithWebIdentityCommand } = await this.#load()
    const t0 = this.#o.clock.monotonicMs()
    const attempt = attemptSignal(this.#retry, signal)
    let code: string | undefined
    try {
      const out = await client.send(new AssumeRoleWithWebIdentityCommand(input), {
        abortSignal: attempt.signal,
      })
      return parseStsAnswer(out)
    } catch (err) {
      if (signal?.aborted) throw callerAbortError(signal, 'STS')
      const e = err instanceof AgentError ? err : stsError(err, attempt.signal.aborted, token)
      code = e.code
      throw e
    } finally {
      attempt.release()
      this.#o.onAttempt?.({
        durationMs: this.#o.clock.monotonicMs() - t0,
        outcome: code === undefined ? 'success' : 'error',
        code,
      })
    }
  }
}
