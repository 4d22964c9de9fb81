// The seam between the cache and wherever credentials come from. A credential source receives a
// checked pod token and answers with role credentials and what the answer says about the
// association; the cache and the server never know which source answered. EKS Auth is one
// source; the upstream gate, a fallback or a chained role wrap others behind the same interface.

import type { CheckedToken } from '../token/validity.js'
import type { CallTicket } from './call-ticket.js'

/** Role credentials for one pod, as a source issued them. */
export interface IssuedCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken: string
  /** 12-digit account id, from the assumed-role ARN. */
  accountId: string
  /** When the credentials expire, epoch milliseconds. */
  expirationMs: number
  /** Assumed-role session ARN (informational, for logs). */
  assumedRoleArn: string
}

/** What an answer says about the association that granted the role (informational, for logs). */
export interface AssociationInfo {
  /** Pod identity association id; absent for sources without one. */
  id?: string | undefined
  namespace?: string | undefined
  serviceAccount?: string | undefined
}

export interface SourceAnswer {
  credentials: IssuedCredentials
  association: AssociationInfo
  /** Which upstream issued them, for the audit line (credentials_fetched). */
  issuedBy?: 'eks-auth' | 'sts' | undefined
}

export interface FetchOptions {
  /** A background renewal: no pod waits for it, so it yields to pod requests. Default false. */
  background?: boolean | undefined
  /** Kept current while the call waits in a queue (see call-ticket.ts). */
  ticket?: CallTicket | undefined
  /** Who asked first: the pod's source address. Queues share their turns fairly among requesters. */
  requester?: string | undefined
  /** Abandons the call; it rejects with the signal's AgentError reason, or a timeout. */
  signal?: AbortSignal | undefined
}

export interface CredentialSource {
  /** Exchange a checked pod token for role credentials. Rejects with an AgentError (errors.ts). */
  fetch(request: CheckedToken, options?: FetchOptions): Promise<SourceAnswer>
  /** Load what the first call needs (modules, signer, connections) ahead of it. Never rejects. */
  warmUp(): Promise<void>
  /** Release connections and timers. */
  close(): Promise<void>
}
