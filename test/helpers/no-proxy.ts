// The EKS Auth client's default dispatcher honours the proxy variables: tests that talk to a
// server on loopback clear them, whatever the machine running the tests has set.

import { vi } from 'vitest'

const PROXY_VARS = [
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'NO_PROXY',
  'no_proxy',
]

/** Clear every proxy variable for the current test (undone by vi.unstubAllEnvs()). */
export function stubNoProxy(): void {
  for (const name of PROXY_VARS) vi.stubEnv(name, '')
}
