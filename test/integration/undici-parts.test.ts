// undici's parts loaded on their own (src/upstream/undici-parts.ts), in a fresh node process
// running the built module: a request direct and one through an HTTP_PROXY CONNECT tunnel work,
// and neither undici's index nor Node's bundled copy of undici is loaded.

import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { loadUndiciParts } from '../../src/upstream/undici-parts.js'

const PARTS = fileURLToPath(new URL('../../dist/upstream/undici-parts.js', import.meta.url))

const script = `
  import http from 'node:http'
  import net from 'node:net'
  import { createRequire } from 'node:module'
  import { loadUndiciParts } from ${JSON.stringify(PARTS)}
  const listen = (s) => new Promise((r) => s.listen(0, '127.0.0.1', () => r(s.address().port)))
  const upstream = http.createServer((req, res) => res.end(req.method + ' ' + req.url))
  const upPort = await listen(upstream)
  let tunnels = 0
  const proxy = http.createServer((_q, s) => s.writeHead(405).end())
  proxy.on('connect', (req, socket, head) => {
    tunnels++
    const [host, port] = String(req.url).split(':')
    const up = net.connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\\r\\n\\r\\n')
      up.write(head)
      up.pipe(socket)
      socket.pipe(up)
    })
  })
  const proxyPort = await listen(proxy)
  const parts = await loadUndiciParts()
  const call = async (dispatcher) => {
    const res = await dispatcher.request({ origin: 'http://127.0.0.1:' + upPort, path: '/x/y', method: 'POST', body: '{}' })
    const text = await res.body.text()
    await dispatcher.close()
    return res.statusCode + ' ' + text
  }
  const direct = await call(new parts.EnvHttpProxyAgent({}))
  const proxied = await call(new parts.EnvHttpProxyAgent({ httpProxy: 'http://127.0.0.1:' + proxyPort }))
  const cache = Object.keys(createRequire(import.meta.url).cache)
  console.log(JSON.stringify({
    source: parts.source,
    direct,
    proxied,
    tunnels,
    undiciIndex: cache.some((f) => /[\\\\/]undici[\\\\/]index\\.js$/.test(f)),
    nodeBundledUndici: process.moduleLoadList.includes('NativeModule internal/deps/undici/undici'),
  }))
  upstream.close()
  proxy.close()
`

describe('undici parts', () => {
  it('come from undici files in this version (an upgrade that moves them fails here)', async () => {
    expect((await loadUndiciParts()).source).toBe('files')
  })

  it('work in a fresh process, direct and through a CONNECT proxy, without undici index or Node bundled undici', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--input-type=module', '-e', script],
      { timeout: 20_000 },
    )
    expect(JSON.parse(stdout)).toEqual({
      source: 'files',
      direct: '200 POST /x/y',
      proxied: '200 POST /x/y',
      tunnels: 1,
      undiciIndex: false,
      nodeBundledUndici: false,
    })
  })
})
