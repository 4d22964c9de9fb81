// undici's parts loaded on their own (src/upstream/undici-parts.ts), in a fresh node process
// running the built module: a request direct and one through an HTTP_PROXY CONNECT tunnel work,
// and neither undici's index nor Node's bundled copy of undici is loaded.

import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadUndiciParts } from '../../src/upstream/undici-parts.js'
import type { ConnectProxy } from '../helpers/connect-proxy.js'
import { startConnectProxy } from '../helpers/connect-proxy.js'
import { runModuleScript } from '../helpers/spawn.js'

const PARTS = fileURLToPath(new URL('../../dist/upstream/undici-parts.js', import.meta.url))
const AGENT = fileURLToPath(new URL('../../dist/agent.js', import.meta.url))
const MOCK = fileURLToPath(new URL('../../dist/mock/mock-eks-auth.js', import.meta.url))

/** Runs in the child: UPSTREAM and PROXY (origins) come from its environment. */
const script = `
  import { createRequire } from 'node:module'
  import { loadUndiciParts } from ${JSON.stringify(PARTS)}
  const parts = await loadUndiciParts()
  const call = async (dispatcher) => {
    const res = await dispatcher.request({ origin: process.env.UPSTREAM, path: '/x/y', method: 'POST', body: '{}' })
    const text = await res.body.text()
    await dispatcher.close()
    return res.statusCode + ' ' + text
  }
  const direct = await call(new parts.EnvHttpProxyAgent({}))
  const proxied = await call(new parts.EnvHttpProxyAgent({ httpProxy: process.env.PROXY }))
  const cache = Object.keys(createRequire(import.meta.url).cache)
  console.log(JSON.stringify({
    source: parts.source,
    direct,
    proxied,
    undiciIndex: cache.some((f) => /[\\\\/]undici[\\\\/]index\\.js$/.test(f)),
    nodeBundledUndici: process.moduleLoadList.includes('NativeModule internal/deps/undici/undici'),
  }))
`

describe('undici parts', () => {
  let upstream: http.Server
  let upstreamUrl: string
  let proxy: ConnectProxy
  beforeAll(async () => {
    upstream = http.createServer((req, res) => res.end(`${req.method} ${req.url}`))
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
    proxy = await startConnectProxy()
  })
  afterAll(() => {
    for (const s of [upstream, proxy.server]) {
      s.close()
      s.closeAllConnections()
    }
  })

  it('come from undici files in this version (an upgrade that moves them fails here)', async () => {
    expect((await loadUndiciParts()).source).toBe('files')
  })

  it('work in a fresh process, direct and through a CONNECT proxy, without undici index or Node bundled undici', async () => {
    const stdout = await runModuleScript(script, {
      env: {
        PATH: process.env.PATH,
        UPSTREAM: upstreamUrl,
        PROXY: `http://127.0.0.1:${proxy.port}`,
      },
    })
    expect(JSON.parse(stdout)).toEqual({
      source: 'files',
      direct: '200 POST /x/y',
      proxied: '200 POST /x/y',
      undiciIndex: false,
      nodeBundledUndici: false,
    })
    expect(proxy.tunnels()).toBe(1)
  })

  // On Node 22 and later an ESM import of node:http reads its WebSocket getter, which loads Node's
  // bundled undici (src/util/node-http.ts); on Node 20 this holds either way.
  it("the agent's modules, loaded as the CLI does, do not load Node's bundled undici", async () => {
    const stdout = await runModuleScript(
      `await import(${JSON.stringify(AGENT)})
       await import(${JSON.stringify(MOCK)})
       console.log(process.moduleLoadList.includes('NativeModule internal/deps/undici/undici'))`,
    )
    expect(stdout.trim()).toBe('false')
  })
})
