// `initialize`: the link the agent's addresses live on, as the reference agent's init container
// creates it: dummy link pod-id-link0 with 169.254.170.23/32 (required) and fd00:ec2::23/128
// (optional), up. Idempotent. Uses iproute2's `ip`, which the container image ships.

import { execFile } from 'node:child_process'

export const LINK_NAME = 'pod-id-link0'
export const IPV4_ADDRESS = '169.254.170.23/32'
export const IPV6_ADDRESS = 'fd00:ec2::23/128'

export interface IpResult {
  code: number
  stdout: string
  stderr: string
}

export type IpRunner = (args: string[]) => Promise<IpResult>

export const runIp: IpRunner = (args) =>
  new Promise((resolve) => {
    execFile('ip', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null
      if (e !== null && e.code === 'ENOENT') {
        resolve({ code: 127, stdout: '', stderr: "the 'ip' command (iproute2) is not installed" })
        return
      }
      resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : 1, stdout, stderr })
    })
  })

export class InitError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'InitError'
  }
}

function firstLine(s: string): string {
  return s.trim().split('\n')[0] ?? ''
}

function explain(step: string, r: IpResult): InitError {
  const why = firstLine(r.stderr) || `exit code ${r.code}`
  if (/Operation not permitted|permission denied/i.test(why)) {
    return new InitError(
      `${step}: ${why} (initialize needs CAP_NET_ADMIN on the host network namespace)`,
    )
  }
  if (/Unknown device type|unknown link kind|not supported/i.test(why)) {
    return new InitError(
      `${step}: this kernel has no 'dummy' link type (${why}); load the dummy module (modprobe dummy) or add ${IPV4_ADDRESS} to an existing interface by hand`,
    )
  }
  return new InitError(`${step}: ${why}`)
}

/**
 * Create/refresh the link. Returns notes about optional steps that failed (IPv6). `ipv4Only`
 * leaves IPv6 out (nodes without it, or with it disabled: nothing to note).
 */
export async function initLink(
  ip: IpRunner = runIp,
  opts: { ipv4Only?: boolean } = {},
): Promise<{ created: boolean; notes: string[] }> {
  const notes: string[] = []
  const show = await ip(['link', 'show', 'dev', LINK_NAME])
  let created = false
  if (show.code !== 0) {
    if (show.code === 127) throw new InitError(show.stderr)
    const add = await ip(['link', 'add', LINK_NAME, 'type', 'dummy'])
    if (add.code !== 0) throw explain(`creating link ${LINK_NAME}`, add)
    created = true
  }
  const v4 = await ip(['addr', 'replace', IPV4_ADDRESS, 'dev', LINK_NAME])
  if (v4.code !== 0) throw explain(`adding ${IPV4_ADDRESS} to ${LINK_NAME}`, v4)
  if (opts.ipv4Only !== true) {
    const v6 = await ip(['-6', 'addr', 'replace', IPV6_ADDRESS, 'dev', LINK_NAME, 'nodad'])
    if (v6.code !== 0)
      notes.push(
        `IPv6 address ${IPV6_ADDRESS} not added: ${firstLine(v6.stderr) || `exit code ${v6.code}`}`,
      )
  }
  const up = await ip(['link', 'set', 'dev', LINK_NAME, 'up'])
  if (up.code !== 0) throw explain(`bringing ${LINK_NAME} up`, up)
  return { created, notes }
}
