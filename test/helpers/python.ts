// Run a python3 helper script (botocore, the independent AWS client on this machine) with a clean
// environment and read the one JSON line it prints last.

import { execFile } from 'node:child_process'

export interface PythonRunOptions {
  /** Added to the clean environment (PATH and HOME only). */
  env?: Record<string, string>
  /** Written to the script's stdin (then closed). */
  input?: string
  /** The script is killed after this many ms. Default 20000. */
  timeoutMs?: number
}

/**
 * Runs `python3 script` and resolves the JSON object on the last line of its stdout, whatever the
 * exit code (helpers report errors as JSON); rejects, with stderr, when there is no such line.
 */
export function runPythonJson<T = Record<string, unknown>>(
  script: string,
  { env = {}, input = '', timeoutMs = 20_000 }: PythonRunOptions = {},
): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'python3',
      [script],
      { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) => {
        const line = stdout.trim().split('\n').pop() ?? ''
        try {
          resolve(JSON.parse(line) as T)
        } catch {
          reject(new Error(`python3 ${script} failed: ${err?.message ?? ''} ${stderr}`))
        }
      },
    )
    // A script that exits before reading its input must not fail the test with EPIPE.
    child.stdin?.on('error', () => {})
    child.stdin?.end(input)
  })
}
