// `initialize`: the ip(8) calls it makes, idempotence, and one clear line for each failure.

import { describe, expect, it } from 'vitest'
import type { IpResult } from '../../../src/netlink/init-link.js'
import { initLink, runIp } from '../../../src/netlink/init-link.js'

function fakeIp(answers: (args: string[]) => IpResult) {
  const calls: string[] = []
  const ip = (args: string[]): Promise<IpResult> => {
    calls.push(args.join(' '))
    return Promise.resolve(answers(args))
  }
  return { ip, calls }
}

const ok: IpResult = { code: 0, stdout: '', stderr: '' }

describe('initLink', () => {
  it('creates the dummy link, adds both addresses and brings it up', async () => {
    const { ip, calls } = fakeIp((a) =>
      a[0] === 'link' && a[1] === 'show'
        ? { code: 1, stdout: '', stderr: 'Device "pod-id-link0" does not exist.' }
        : ok,
    )
    expect(await initLink(ip)).toEqual({ created: true, notes: [] })
    expect(calls).toEqual([
      'link show dev pod-id-link0',
      'link add pod-id-link0 type dummy',
      'addr replace 169.254.170.23/32 dev pod-id-link0',
      '-6 addr replace fd00:ec2::23/128 dev pod-id-link0 nodad',
      'link set dev pod-id-link0 up',
    ])
  })

  it('--ipv4-only leaves IPv6 out, with nothing to note', async () => {
    const { ip, calls } = fakeIp((a) =>
      a[0] === '-6' ? { code: 2, stdout: '', stderr: 'RTNETLINK answers: Permission denied' } : ok,
    )
    expect(await initLink(ip, { ipv4Only: true })).toEqual({ created: false, notes: [] })
    expect(calls.some((c) => c.startsWith('-6'))).toBe(false)
  })

  it('is idempotent: an existing link is reused', async () => {
    const { ip, calls } = fakeIp(() => ok)
    expect(await initLink(ip)).toEqual({ created: false, notes: [] })
    expect(calls).not.toContain('link add pod-id-link0 type dummy')
  })

  it('an IPv6 failure is a note, not an error', async () => {
    const { ip } = fakeIp((a) =>
      a[0] === '-6'
        ? { code: 2, stdout: '', stderr: 'RTNETLINK answers: Permission denied\n' }
        : ok,
    )
    const r = await initLink(ip)
    expect(r.notes).toEqual([
      'IPv6 address fd00:ec2::23/128 not added: RTNETLINK answers: Permission denied',
    ])
  })

  it('a kernel without the dummy link type gets one clear line', async () => {
    const { ip } = fakeIp((a) =>
      a[1] === 'show'
        ? { code: 1, stdout: '', stderr: 'Device does not exist' }
        : a[1] === 'add'
          ? { code: 2, stdout: '', stderr: 'Error: Unknown device type.\n' }
          : ok,
    )
    await expect(initLink(ip)).rejects.toThrow(
      "creating link pod-id-link0: this kernel has no 'dummy' link type (Error: Unknown device type.); load the dummy module (modprobe dummy) or add 169.254.170.23/32 to an existing interface by hand",
    )
  })

  it('a missing capability is named', async () => {
    const { ip } = fakeIp((a) =>
      a[1] === 'show'
        ? { code: 1, stdout: '', stderr: 'x' }
        : { code: 2, stdout: '', stderr: 'RTNETLINK answers: Operation not permitted' },
    )
    await expect(initLink(ip)).rejects.toThrow(
      /Operation not permitted \(initialize needs CAP_NET_ADMIN/,
    )
  })

  it('the real ip command answers (runIp)', async () => {
    const r = await runIp(['-V'])
    expect(r.code).toBe(0)
    expect(r.stdout + r.stderr).toMatch(/iproute2|ip utility/)
  })
})
