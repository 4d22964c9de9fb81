// SIGTERM under load, as a DaemonSet rollout does it: the agent process, 64 keep-alive clients each
// sending its next request the moment an answer arrives, and SIGTERM in the middle. Every request
// that reached the agent must be answered; answers from then on say `Connection: close`; the
// clients' next connections are refused once the listener is closed; the process exits 0.

import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { NODE_KEY_ENV, startProcessMock } from '../helpers/harness.js'
import { loopbackServerArgs, startCli, startedCredentialsUrl } from '../helpers/spawn.js'
import { until } from '../helpers/until.js'

interface ClientTally {
  /** Answers read, and how many of them said Connection: close. */
  answered: number
  closeAnswers: number
  /** Requests written on an open connection that never got an answer: these must be 0. */
  lost: number
  /** New connections refused (the listener was closed): these never reached the agent. */
  refused: number
  /** Error codes of lost requests, for the failure message. */
  errors: string[]
}

/**
 * One keep-alive client: connects, sends a request, reads the answer, sends the next at once; on
 * an answer with `Connection: close` it connects anew. Ends when a connection is refused.
 */
function backToBack(port: number, token: string, tally: ClientTally): Promise<void> {
  return new Promise((resolve) => {
    const request = `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: ${token}\r\n\r\n`
    const open = (): void => {
      const s = connect(port, '127.0.0.1')
      let connected = false
      let outstanding = false
      let buf = ''
      const send = (): void => {
        outstanding = true
        s.write(request)
      }
      s.on('connect', () => {
        connected = true
        send()
      })
      s.on('data', (c: Buffer) => {
        buf += c.toString('latin1')
        for (;;) {
          const end = buf.indexOf('\r\n\r\n')
          if (end === -1) return
          const head = buf.slice(0, end)
          const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0)
          if (buf.length < end + 4 + length) return
          buf = buf.slice(end + 4 + length)
          outstanding = false
          tally.answered++
          if (/\r\nconnection: close/i.test(head)) {
            tally.closeAnswers++
            s.end()
            return
          }
          send()
        }
      })
      s.on('error', (e: NodeJS.ErrnoException) => {
        if (!connected) {
          tally.refused++
        } else if (outstanding) {
          tally.lost++
          tally.errors.push(e.code ?? e.message)
          outstanding = false
        }
      })
      s.on('close', () => {
        if (outstanding) {
          tally.lost++
          tally.errors.push('closed before the answer')
        }
        if (connected) open()
        else resolve()
      })
    }
    open()
  })
}

/** A keep-alive connection that made one request and then sits idle; ask() sends another. */
async function openIdle(port: number, token: string): Promise<{ ask(): Promise<string> }> {
  const s = connect(port, '127.0.0.1')
  let buf = ''
  s.on('data', (c: Buffer) => (buf += c.toString('latin1')))
  s.on('error', () => {})
  const request = `GET /v1/credentials HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: ${token}\r\n\r\n`
  const ask = async (): Promise<string> => {
    buf = ''
    s.write(request)
    await until(
      () => /\r\n\r\n\{.*\}$/s.test(buf) || s.destroyed,
      'an answer on the idle connection',
    )
    return buf
  }
  await new Promise((resolve) => s.once('connect', resolve))
  await ask()
  return { ask }
}

describe('SIGTERM under load', () => {
  it('answers every request that reached the agent, closes keep-alive connections cleanly, and exits 0', async () => {
    const { mock, issuer, url } = await startProcessMock('drain')
    const agent = startCli(loopbackServerArgs('drain', url), NODE_KEY_ENV)
    try {
      await agent.waitFor((l) => l.event === 'started')
      const agentUrl = new URL(startedCredentialsUrl(agent.lines.join('\n'))!)
      const port = Number(agentUrl.port)
      const token = await issuer.mint({ namespace: 'default', serviceAccount: 'app' })
      // An SDK's pooled connection, idle when SIGTERM comes, asks again a little later.
      const idle = await openIdle(port, token)
      const tally: ClientTally = { answered: 0, closeAnswers: 0, lost: 0, refused: 0, errors: [] }
      const clients = Array.from({ length: 64 }, () => backToBack(port, token, tally))
      await until(() => tally.answered >= 2000, 'the load to run')
      agent.child.kill('SIGTERM')
      await Promise.all(clients)
      expect(await idle.ask()).toMatch(/^HTTP\/1\.1 200 OK\r\n(.+\r\n)*connection: close\r\n/i)
      const done = await agent.exited
      expect(tally.errors).toEqual([])
      expect(tally.lost).toBe(0)
      expect(done.code).toBe(0)
      // Each connection got an answer saying Connection: close, then its next connect was refused.
      expect(tally.closeAnswers).toBeGreaterThanOrEqual(64)
      expect(tally.refused).toBe(64)
      expect(done.stdout).toContain('"event":"stopped"')
    } finally {
      agent.child.kill('SIGKILL')
      await mock.stop()
    }
  })
})
