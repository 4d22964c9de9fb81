// A service-account issuer's key set served on loopback, as the EKS OIDC issuer serves it (HTTP),
// or as the API server serves /openid/v1/jwks (HTTPS with the test cluster's certificate, and
// only to a bearer token it accepts): keys can be rotated, the server made to fail, and its
// fetches counted.

import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { JSONWebKeySet } from 'jose'

const TLS_DIR = new URL('../fixtures/tls/', import.meta.url)

/** The test cluster's CA (signs the API server's certificate), and a CA that signed nothing here. */
export const TEST_CA = readFileSync(new URL('ca.crt', TLS_DIR), 'utf8')
export const OTHER_CA = readFileSync(new URL('other-ca.crt', TLS_DIR), 'utf8')

export interface JwksServerOptions {
  /**
   * Serve as the API server: 401 unless `Authorization: Bearer <one of these>`, over HTTPS with
   * the test cluster's certificate (unless `tls: false`).
   */
  apiServer?: { tokens: () => readonly string[]; tls?: boolean }
}

export class JwksServer {
  #jwks: JSONWebKeySet
  #failing = false
  #server: Server | undefined
  readonly #apiServer: JwksServerOptions['apiServer']
  /** Fetches answered (failed ones included). */
  fetches = 0
  /** The Authorization header of each fetch (undefined where none came). */
  readonly authorizations: (string | undefined)[] = []

  constructor(jwks: JSONWebKeySet, o: JwksServerOptions = {}) {
    this.#jwks = jwks
    this.#apiServer = o.apiServer
  }

  /** Serve these keys from now on (a rotation). */
  setKeys(jwks: JSONWebKeySet): void {
    this.#jwks = jwks
  }

  /** Answer 503 from now on (true), or the keys again (false). */
  setFailing(failing: boolean): void {
    this.#failing = failing
  }

  /** Starts on a free loopback port; resolves the key set's URL. */
  async start(): Promise<string> {
    const handle = (req: IncomingMessage, res: ServerResponse): void => {
      this.fetches++
      this.authorizations.push(req.headers.authorization)
      if (this.#apiServer !== undefined) {
        const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
        if (bearer === undefined || !this.#apiServer.tokens().includes(bearer)) {
          // As the API server answers an unknown or missing token.
          res.writeHead(401, { 'content-type': 'application/json' })
          res.end(
            '{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Unauthorized","code":401}',
          )
          return
        }
      }
      if (this.#failing || req.url !== '/openid/v1/jwks') {
        res.writeHead(this.#failing ? 503 : 404).end()
        return
      }
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' })
      res.end(JSON.stringify(this.#jwks))
    }
    const tls = this.#apiServer !== undefined && this.#apiServer.tls !== false
    this.#server = tls
      ? createTlsServer(
          {
            cert: readFileSync(new URL('server.crt', TLS_DIR)),
            key: readFileSync(new URL('server.key', TLS_DIR)),
          },
          handle,
        )
      : createServer(handle)
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve))
    const { port } = this.#server.address() as AddressInfo
    return `${tls ? 'https' : 'http'}://127.0.0.1:${port}/openid/v1/jwks`
  }

  async stop(): Promise<void> {
    const server = this.#server
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
