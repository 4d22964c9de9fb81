// A service-account issuer's key set served over HTTP on loopback, as the EKS OIDC issuer or the
// API server's /openid/v1/jwks serve it: keys can be rotated, the server made to fail, and its
// fetches counted.

import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { JSONWebKeySet } from 'jose'

export class JwksServer {
  #jwks: JSONWebKeySet
  #failing = false
  #server: Server | undefined
  /** Fetches answered (failed ones included). */
  fetches = 0

  constructor(jwks: JSONWebKeySet) {
    this.#jwks = jwks
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
    this.#server = createServer((req, res) => {
      this.fetches++
      if (this.#failing || req.url !== '/openid/v1/jwks') {
        res.writeHead(this.#failing ? 503 : 404).end()
        return
      }
      res.writeHead(200, { 'content-type': 'application/jwk-set+json' })
      res.end(JSON.stringify(this.#jwks))
    })
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve))
    const { port } = this.#server.address() as AddressInfo
    return `http://127.0.0.1:${port}/openid/v1/jwks`
  }

  async stop(): Promise<void> {
    const server = this.#server
    if (server === undefined) return
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
