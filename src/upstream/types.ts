// What every credential source (EKS Auth, later STS) returns, and the interface the cache uses.

/** Credentials for one pod, as the upstream issued them. */
export interface PodCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken: string
  /** 12-digit account id, from the assumed-role ARN. */
  accountId: string
  /** When the credentials expire, epoch milliseconds. */
  expirationMs: number
  /** Assumed-role session ARN (informational, for logs). */
  assumedRoleArn: string
  /** Pod identity association id (informational, for logs); absent for sources without one. */
  associationId?: string | undefined
  namespace?: string | undefined
  serviceAccount?: string | undefined
}

/** A credential source. Implementations throw AgentError subclasses (see src/errors.ts). */
export interface CredentialFetcher {
  /** Exchange a pod's service-account token for role credentials. */
  fetchCredentials(token: string, signal?: AbortSignal): Promise<PodCredentials>
}

/** The node's own AWS credentials, used to sign upstream calls. */
export interface NodeCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string | undefined
  expiration?: Date | undefined
}

export type NodeCredentialsProvider = () => Promise<NodeCredentials>
