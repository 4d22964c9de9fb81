// The API server's own key set (--token-jwks kubernetes), for clusters whose issuer is not public:
// https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/openid/v1/jwks, read as the agent's
// own service account (Kubernetes binds system:service-account-issuer-discovery to every service
// account by default) and trusting only the cluster's CA, as in-cluster clients do.

import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError, parsePort } from '../config/values.js'

/** The --token-jwks value that names the API server the agent runs under. */
export const API_SERVER_KEYS = 'kubernetes'

/** Where the kubelet mounts a pod's service-account token and the cluster's CA. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount'

/** The API server's key-set URL from the service env vars the kubelet gives every pod. */
export function apiServerJwksUrl(env: NodeJS.ProcessEnv): string {
  const host = env.KUBERNETES_SERVICE_HOST?.trim() ?? ''
  const port = env.KUBERNETES_SERVICE_PORT?.trim() || '443'
  if (host === '') {
    throw new ConfigError(
      "--token-jwks kubernetes: KUBERNETES_SERVICE_HOST is not set, so the agent is not running in a pod; give the issuer's key-set URL or a file (kubectl get --raw /openid/v1/jwks)",
    )
  }
  parsePort('--token-jwks kubernetes: KUBERNETES_SERVICE_PORT', port)
  return `https://${host.includes(':') ? `[${host}]` : host}:${port}/openid/v1/jwks`
}

/** How the agent reads the API server's key set: the cluster's CA and its own bearer token. */
export interface ApiServerAccess {
  /** PEM: the only authority trusted for the API server's certificate. */
  readonly ca: string
  /** `Bearer <token>`, read again at every fetch (the kubelet rotates the token). */
  authorization(): Promise<string>
}

/** Reads the CA and checks the token is there. Throws ConfigError naming what is missing. */
export async function apiServerAccess(dir: string): Promise<ApiServerAccess> {
  const tokenFile = join(dir, 'token')
  const read = async (file: string): Promise<string> => {
    try {
      return (await readFile(file, 'utf8')).trim()
    } catch (err) {
      const code = (err as { code?: string }).code ?? String(err)
      throw new ConfigError(
        `--token-jwks kubernetes: cannot read ${file} (${code}): the agent reads the API server's keys as its own service account; mount its token (automountServiceAccountToken: true, as manifests/components/verify-tokens does)`,
      )
    }
  }
  const ca = await read(join(dir, 'ca.crt'))
  await read(tokenFile)
  return {
    ca,
    authorization: async () => `Bearer ${await read(tokenFile)}`,
  }
}
