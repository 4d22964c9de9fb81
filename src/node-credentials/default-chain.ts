// The node's own AWS credentials from the SDK default chain (env, SSO, web identity, shared
// files, process, container and instance metadata). The SDK module is heavy, so it is imported
// lazily on first use (the agent must be ready within 500 ms); preloadDefaultNodeCredentials()
// warms the import in the background a second after start (after the first readiness probes).

import type * as CredentialProviderNode from '@aws-sdk/credential-provider-node'
import type { DefaultProviderInit } from '@aws-sdk/credential-provider-node'
import { NodeCredentialsError } from '../errors.js'
import type { NodeCredentials, NodeCredentialsProvider } from './types.js'

type CredentialProviderNodeModule = typeof CredentialProviderNode

let modulePromise: Promise<CredentialProviderNodeModule> | undefined

/** The SDK module, imported once per process (a failed import is retried on the next call). */
function loadModule(): Promise<CredentialProviderNodeModule> {
  if (modulePromise === undefined) {
    const p = import('@aws-sdk/credential-provider-node')
    modulePromise = p
    p.catch(() => {
      if (modulePromise === p) modulePromise = undefined
    })
  }
  return modulePromise
}

/** Starts importing the SDK chain in the background. Never rejects. */
export function preloadDefaultNodeCredentials(): Promise<void> {
  return loadModule().then(
    () => undefined,
    () => undefined,
  )
}

function reason(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err)
  const oneLine = m.replace(/\s+/g, ' ').trim()
  return oneLine.length > 300 ? `${oneLine.slice(0, 300)}...` : oneLine || 'unknown error'
}

/**
 * A provider backed by `@aws-sdk/credential-provider-node`'s `defaultProvider(init)`. The SDK
 * provider caches credentials and refreshes them before they expire; it is built once, on first
 * call. Failures reject with NodeCredentialsError `unable to load the node's AWS credentials: ...`.
 */
export function createDefaultNodeCredentialsProvider(
  init?: DefaultProviderInit,
): NodeCredentialsProvider {
  let sdkProvider: ReturnType<CredentialProviderNodeModule['defaultProvider']> | undefined
  return async (): Promise<NodeCredentials> => {
    try {
      if (sdkProvider === undefined) {
        const mod = await loadModule()
        sdkProvider ??= mod.defaultProvider(init)
      }
      return await sdkProvider()
    } catch (err) {
      throw new NodeCredentialsError(`unable to load the node's AWS credentials: ${reason(err)}`, {
        cause: err,
      })
    }
  }
}

/** Fixed credentials, for tests and local development. */
export function staticNodeCredentials(creds: NodeCredentials): NodeCredentialsProvider {
  const frozen: NodeCredentials = Object.freeze({ ...creds })
  return () => Promise.resolve(frozen)
}
