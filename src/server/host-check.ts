// The Host check that blocks DNS rebinding and relayed requests: the Host header, port and
// brackets stripped, must name one of the addresses the agent is bound to.

import { ForeignHostError } from '../errors.js'

export class HostCheck {
  /**
   * Exact Host header values accepted without any string work (the common forms), compared with
   * `===`: a Set lookup would hash the header's fresh string on every request, while a compare
   * of unequal lengths returns at once.
   */
  readonly #fast: string[] = []
  readonly #hosts: ReadonlySet<string>

  constructor(bindHosts: readonly string[], port: number) {
    this.#hosts = new Set(bindHosts.map((h) => h.toLowerCase()))
    for (const h of this.#hosts) {
      const form = h.includes(':') ? `[${h}]` : h
      this.#fast.push(form, `${form}:${port}`)
    }
  }

  /** Throws ForeignHostError (403) unless `host` (the raw Host header, '' when absent) is allowed. */
  check(host: string): void {
    const fast = this.#fast
    for (let i = 0; i < fast.length; i++) if (fast[i] === host) return
    const name = stripPort(host)
    if (this.#hosts.has(name.toLowerCase())) return
    throw new ForeignHostError([...this.#hosts], name)
  }
}

/**
 * Port and brackets stripped, as the reference does with SplitHostPort: "169.254.170.23:80" ->
 * "169.254.170.23", "[fd00:ec2::23]:80" -> "fd00:ec2::23". Anything that is not exactly
 * host[:port] or [ipv6][:port] is returned unchanged (and so matches no bind host).
 */
export function stripPort(host: string): string {
  const h = host.trim()
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    if (end === -1) return h
    const rest = h.slice(end + 1)
    return rest === '' || /^:\d*$/.test(rest) ? h.slice(1, end) : h
  }
  const colon = h.indexOf(':')
  // host:port, the port digits only; a bare IPv6 literal (more than one colon) stays as it is
  if (colon !== -1 && h.indexOf(':', colon + 1) === -1 && /^\d*$/.test(h.slice(colon + 1))) {
    return h.slice(0, colon)
  }
  return h
}

/** Lower-cased stripPort, for comparisons. */
export function normaliseHost(host: string): string {
  return stripPort(host).toLowerCase()
}
