// The two parts of undici the EKS Auth client uses: EnvHttpProxyAgent, and Dispatcher#request.
//
// undici's index loads all of undici (fetch, WebSocket, EventSource, cookies, cache storage,
// mocks), and its cookies module reads globalThis.Headers, which makes Node load its own bundled
// copy of undici as well: 6.5 MiB of RSS and 7.7 MiB of V8 heap that the agent never uses
// (bench/README). So the files are loaded on their own, and the request API is mixed into
// Dispatcher.prototype as undici's index does. These paths are undici's internal layout, pinned
// by the lockfile: if an upgrade moves them, loading falls back to the index (same behaviour,
// more memory) and test/integration/undici-parts.test.ts fails, so the change is noticed.

import type * as Undici from 'undici'

export interface UndiciParts {
  EnvHttpProxyAgent: typeof Undici.EnvHttpProxyAgent
  /** 'files': the files alone; 'index': undici's index, after the files failed to load. */
  source: 'files' | 'index'
}

const FILES = {
  envHttpProxyAgent: 'undici/lib/dispatcher/env-http-proxy-agent.js',
  dispatcher: 'undici/lib/dispatcher/dispatcher.js',
  api: 'undici/lib/api/index.js',
} as const

/** A CommonJS module's exports, through import() (specifier not resolved by the compiler). */
async function cjs(specifier: string): Promise<unknown> {
  const ns = (await import(specifier)) as { default: unknown }
  return ns.default
}

async function fromFiles(): Promise<UndiciParts> {
  const [agent, dispatcher, api] = await Promise.all([
    cjs(FILES.envHttpProxyAgent),
    cjs(FILES.dispatcher),
    cjs(FILES.api),
  ])
  const request = (api as { request?: unknown } | null)?.request
  if (
    typeof agent !== 'function' ||
    typeof dispatcher !== 'function' ||
    typeof request !== 'function'
  ) {
    throw new TypeError('undici files do not have the expected exports')
  }
  // What undici's index does; ProxyAgent's CONNECT needs it too. Idempotent.
  Object.assign((dispatcher as { prototype: object }).prototype, api)
  return { EnvHttpProxyAgent: agent as typeof Undici.EnvHttpProxyAgent, source: 'files' }
}

/** Loads the parts, from undici's files if it can, else from its index. */
export async function loadUndiciParts(): Promise<UndiciParts> {
  try {
    return await fromFiles()
  } catch {
    const undici = await import('undici')
    return { EnvHttpProxyAgent: undici.EnvHttpProxyAgent, source: 'index' }
  }
}
