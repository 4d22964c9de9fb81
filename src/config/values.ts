// The syntax of every value a flag, an env var or a file gives the agent, and the one error type
// for a bad one. Each rule lives here once; commands, the agent and the mock all use it.

import type { LogLevel } from '../util/logger.js'
import { LOG_LEVELS } from '../util/logger.js'

/** A bad flag, env var or file at start-up: main prints the message on one line and exits 2. */
export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ConfigError'
  }
}

/** EKS cluster names (protocol.md 1.2, the `clusterName` path label). */
const CLUSTER_NAME = /^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$/
export const CLUSTER_NAME_RULE =
  "1-100 characters of letters, digits, '-' and '_', starting with a letter or digit"

export function isClusterName(value: string): boolean {
  return CLUSTER_NAME.test(value)
}

/** `--flag: "value" <problem>`: how every bad value is reported. */
export function badValue(flag: string, value: string, problem: string): ConfigError {
  return new ConfigError(`${flag}: ${JSON.stringify(value)} ${problem}`)
}

export function parseClusterName(flag: string, value: string): string {
  if (!isClusterName(value)) {
    throw badValue(flag, value, `is not a valid EKS cluster name; expected ${CLUSTER_NAME_RULE}`)
  }
  return value
}

/** A TCP port, 0 (any free port) to 65535. */
export function parsePort(flag: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) > 65535) {
    throw badValue(flag, value, 'is not a port; expected an integer 0-65535')
  }
  return Number(value)
}

/**
 * A region name: one DNS label (lower-case letters, digits, inner dashes). It becomes part of
 * upstream host names, so anything else could redirect a signed call.
 */
export function isRegionName(value: string): boolean {
  return /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(value)
}

/**
 * Checks that `value` is an absolute http(s) URL usable as an upstream's base URL and returns it
 * parsed. A URL carrying a user name or password is refused without echoing it (it could hold a
 * secret); a query or fragment is refused because request paths are appended to the URL's path.
 */
export function validateEndpointUrl(value: string, what = 'endpoint'): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw badValue(
      what,
      value,
      'is not an absolute URL; expected e.g. https://eks-auth.us-west-2.api.aws',
    )
  }
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError(`${what}: a URL with a user name or password is not supported`)
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw badValue(
      what,
      value,
      `must be an http:// or https:// URL (the scheme must be http or https, not ${url.protocol.slice(0, -1)})`,
    )
  }
  if (url.hostname === '') throw badValue(what, value, 'has no host name')
  if (url.search !== '' || url.hash !== '') {
    throw badValue(what, value, 'must not carry a query string or fragment')
  }
  return url
}

/** A log level; logrus's names, which the reference agent's -v flag takes, are accepted too. */
export function parseLogLevel(flag: string, value: string): LogLevel {
  const v = value.toLowerCase()
  if (v === 'warning') return 'warn'
  if (v === 'panic') return 'fatal'
  if ((LOG_LEVELS as readonly string[]).includes(v)) return v as LogLevel
  throw badValue(flag, value, `is not a log level; expected one of ${LOG_LEVELS.join(', ')}`)
}
