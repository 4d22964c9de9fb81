// The node's own AWS credentials, which sign the agent's upstream calls.

export interface NodeCredentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string | undefined
  expiration?: Date | undefined
}

export type NodeCredentialsProvider = () => Promise<NodeCredentials>
