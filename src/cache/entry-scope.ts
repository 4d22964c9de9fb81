// The one rule for which entry a checked token reads and fills. Without verification, or when the
// issuer's keys cannot be loaded, a token is its own key: it reads only an entry it created. A
// token verified on the node is keyed by its pod's UID (--share-credentials per-pod, the default:
// rotation costs nothing) or by its association (per-association: cluster, namespace, service
// account, and the role when the agent itself picks it, as the STS source does).

import type { ShareMode } from '../config/server-config.js'
import type { CheckedToken } from '../token/validity.js'
import type { TokenVerifier, VerifiedPod } from '../token/verify-token.js'
import type { Scope } from './key-map.js'

/** A checked token and the slot it reads and fills. */
export interface ScopedRequest {
  readonly request: CheckedToken
  readonly key: string
  readonly scope: Scope
  /** The pod the token was verified to belong to; undefined when it was not verified. */
  readonly pod: VerifiedPod | undefined
}

export interface EntryScopeOptions {
  /** Undefined: tokens are not verified on the node (no --token-jwks). */
  verifier: Pick<TokenVerifier, 'verify'> | undefined
  share: ShareMode
  clusterName: string | undefined
  /** The role the agent itself would assume for a service account (the STS associations file). */
  roleOf?: ((namespace: string, serviceAccount: string) => string | undefined) | undefined
}

/** Separates the parts of a key; no name, UID or ARN contains it. */
const SEP = '\u0000'

/** Every token's own key (exact string): the key of an unverified token. */
export function tokenScope(request: CheckedToken): ScopedRequest {
  return { request, key: `t${SEP}${request.token}`, scope: 'token', pod: undefined }
}

/**
 * The scoping rule as configured. Throws the AgentError (400) of a token that verification
 * refuses; the refusal costs no upstream call.
 */
export function entryScope(
  o: EntryScopeOptions,
): (request: CheckedToken) => Promise<ScopedRequest> {
  const { verifier } = o
  if (verifier === undefined) return (request) => Promise.resolve(tokenScope(request))
  return async (request) => {
    const pod = await verifier.verify(request)
    if (pod === undefined) return tokenScope(request)
    if (o.share === 'per-pod') {
      return { request, key: `p${SEP}${pod.podUid}`, scope: 'pod', pod }
    }
    const role = o.roleOf?.(pod.namespace, pod.serviceAccount) ?? ''
    const key = ['a', o.clusterName ?? '', pod.namespace, pod.serviceAccount, role].join(SEP)
    return { request, key, scope: 'association', pod }
  }
}
