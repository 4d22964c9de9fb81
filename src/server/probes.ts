// /healthz, /readyz and /metrics. Readiness connects to every credential listener directly (never
// through a proxy from the environment) and expects the 404 that any other path answers.

import type { IncomingMessage, ServerResponse } from 'node:http'
import { request } from 'node:http'
import type { Registry } from 'prom-client'
import { SELF_CHECK_HEADER } from './credential-handler.js'

export interface ProbeTarget {
  host: string
  port: number
}

export interface ProbeOptions {
  targets: () => readonly ProbeTarget[]
  selfCheckNonce: string
  /** True once shutdown has begun: readiness fails so that traffic drains. */
  shuttingDown: () => boolean
  registry?: Registry
  timeoutMs?: number
  /** Told the outcome of every readiness check (pod_identity_ready). */
  onReadiness?: (ready: boolean) => void
}

function text(res: ServerResponse, status: number, body: string, head: boolean): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  })
  res.end(head ? undefined : body)
}

/** GET / on one listener; resolves to an error text, or undefined when it answered 404. */
function selfCheck(t: ProbeTarget, nonce: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const host = t.host.includes(':') ? `[${t.host}]` : t.host
    const req = request(
      {
        host: t.host,
        port: t.port,
        path: '/',
        method: 'GET',
        agent: false,
        headers: { host: `${host}:${t.port}`, [SELF_CHECK_HEADER]: nonce, connection: 'close' },
        timeout: timeoutMs,
      },
      (res: IncomingMessage) => {
        res.resume()
        resolve(res.statusCode === 404 ? undefined : `${host}:${t.port} answered ${res.statusCode}`)
      },
    )
    req.on('timeout', () => {
      req.destroy()
      resolve(`${host}:${t.port} did not answer within ${timeoutMs} ms`)
    })
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve(`${host}:${t.port}: ${err.code ?? err.message}`),
    )
    req.end()
  })
}

export function createProbeHandler(
  o: ProbeOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const timeoutMs = o.timeoutMs ?? 2000
  return (req, res) => {
    const head = req.method === 'HEAD'
    const url = req.url ?? ''
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    if (req.method !== 'GET' && !head) {
      text(res, 405, 'method not allowed\n', false)
      return
    }
    switch (path) {
      case '/healthz':
        text(res, 200, 'ok\n', head)
        return
      case '/readyz': {
        if (o.shuttingDown()) {
          o.onReadiness?.(false)
          text(res, 503, 'shutting down\n', head)
          return
        }
        Promise.all(o.targets().map((t) => selfCheck(t, o.selfCheckNonce, timeoutMs))).then(
          (errs) => {
            const bad = errs.filter((e): e is string => e !== undefined)
            o.onReadiness?.(bad.length === 0)
            if (bad.length === 0) text(res, 200, 'ok\n', head)
            else text(res, 503, `not ready: ${bad.join('; ')}\n`, head)
          },
          () => text(res, 500, 'readiness check failed\n', head),
        )
        return
      }
      case '/metrics':
        if (o.registry !== undefined) {
          const registry = o.registry
          registry.metrics().then(
            (body) => {
              res.writeHead(200, {
                'Content-Type': registry.contentType,
                'Content-Length': Buffer.byteLength(body),
              })
              res.end(head ? undefined : body)
            },
            () => text(res, 500, 'metrics collection failed\n', head),
          )
          return
        }
        text(res, 404, '404 page not found\n', head)
        return
      default:
        text(res, 404, '404 page not found\n', head)
    }
  }
}
