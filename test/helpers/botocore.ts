// botocore's ContainerProvider (what boto3 and the AWS CLI use), run in python3 by
// botocore_fetch.py: the second real SDK client of the integration tests.

import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { runPythonJson } from './python.js'

const SCRIPT = fileURLToPath(new URL('./botocore_fetch.py', import.meta.url))

/** What botocore_fetch.py prints: the credentials' public parts, or the error botocore raised. */
export interface BotocoreResult {
  /** Class name of the exception botocore raised, e.g. `CredentialRetrievalError`. */
  error?: string
  message?: string
  method?: string
  access_key?: string
  secret_len?: number
  token_len?: number
  expiry?: string | null
  account_id?: string | null
  /** Times botocore slept between attempts: once after every failed attempt, the last included. */
  sleeps: number
}

export interface BotocoreOptions {
  /**
   * botocore's sleeps between attempts wait until this settles (later ones return at once).
   * Without it every sleep returns at once: botocore's 1 s is not waited for.
   */
  sleepUntil?: Promise<unknown>
  /** ContainerMetadataFetcher.TIMEOUT_SECONDS (botocore's own: 2 s in 1.43). */
  timeoutSeconds?: number
}

/** Fetch credentials from `url` with the token in `tokenFile`, as boto3 in a pod would. */
export function botocore(
  url: string,
  tokenFile: string,
  opts: BotocoreOptions = {},
): Promise<BotocoreResult> {
  const env: Record<string, string> = {
    AWS_CONTAINER_CREDENTIALS_FULL_URI: url,
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile,
  }
  if (opts.timeoutSeconds !== undefined) env.BOTOCORE_TIMEOUT_SECONDS = String(opts.timeoutSeconds)
  if (opts.sleepUntil === undefined) return runPythonJson<BotocoreResult>(SCRIPT, { env })

  // The script's sleeps wait for this file (in the token's directory) to exist.
  const gate = `${tokenFile}.sleep-gate`
  env.BOTOCORE_SLEEP_GATE = gate
  const open = () => writeFile(gate, '')
  opts.sleepUntil.then(open, open).catch(() => {}) // the directory may be gone by then
  return runPythonJson<BotocoreResult>(SCRIPT, { env })
}
