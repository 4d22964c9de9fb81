// `pod-identity-agent initialize` (alias `init`): the DaemonSet's init container.

import { ConfigError } from '../config/values.js'
import { InitError, initLink, IPV4_ADDRESS, IPV6_ADDRESS, LINK_NAME } from '../netlink/init-link.js'
import { parseFlags } from './flags.js'

/** `initialize` argv (after the subcommand). Throws ConfigError on a bad flag. */
export function parseInitArgs(argv: string[]): { help: boolean; ipv4Only: boolean } {
  const values = parseFlags('initialize', argv, {
    help: { type: 'boolean', short: 'h' },
    'ipv4-only': { type: 'boolean' },
  })
  return { help: values.help === true, ipv4Only: values['ipv4-only'] === true }
}

export async function runInitCommand(argv: string[]): Promise<number> {
  const { help, ipv4Only } = parseInitArgs(argv)
  if (help) {
    console.log(`Usage: pod-identity-agent initialize [--ipv4-only]

Creates the dummy link ${LINK_NAME} with ${IPV4_ADDRESS} (required) and ${IPV6_ADDRESS}
(optional: a failure is reported, not fatal) and brings it up. Idempotent. Needs CAP_NET_ADMIN
in the host network namespace and the 'ip' command (iproute2).

  --ipv4-only   leave ${IPV6_ADDRESS} out (nodes without IPv6; run the agent with
                --bind-hosts ${IPV4_ADDRESS})`)
    return 0
  }
  try {
    const { created, notes } = await initLink(undefined, { ipv4Only })
    for (const n of notes) console.error(`pod-identity-agent: initialize: ${n}`)
    console.log(`${LINK_NAME} ${created ? 'created' : 'already present'}; ${IPV4_ADDRESS} up`)
    return 0
  } catch (err) {
    if (err instanceof InitError) throw new ConfigError(`initialize: ${err.message}`)
    throw err
  }
}
