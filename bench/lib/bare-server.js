// The baseline: a bare node:http server in its own process that answers every request with the
// bytes the agent sends on a cache hit (same body, same Content-Type and Content-Length).
// With `hold`, it also keeps what the agent's cache keeps per pod and nothing else: for each
// distinct Authorization header, the token and its own copy of the body and headers (the memory
// benchmark's floor: node:http holding the same entries).
// Usage: node bench/lib/bare-server.js PORT BODYFILE [hold]

import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'

const [port, bodyFile, mode] = process.argv.slice(2)
if (!port || !bodyFile || (mode !== undefined && mode !== 'hold')) {
  console.error('usage: node bench/lib/bare-server.js PORT BODYFILE [hold]')
  process.exit(2)
}
const body = readFileSync(bodyFile)
const headers = ['Content-Type', 'application/json', 'Content-Length', String(body.length)]

/** At most this many entries held (the agent's default --max-cache-size). */
const MAX_HELD = 2000
const held = new Map()

function answer(_req, res) {
  res.writeHead(200, headers)
  res.end(body)
}

function holdAndAnswer(req, res) {
  const token = req.headers.authorization ?? ''
  let entry = held.get(token)
  if (entry === undefined && held.size < MAX_HELD) {
    const own = Buffer.allocUnsafeSlow(body.length)
    body.copy(own)
    entry = { token, body: own, headers: [...headers] }
    held.set(token, entry)
  }
  res.writeHead(200, entry?.headers ?? headers)
  res.end(entry?.body ?? body)
}

const server = createServer(mode === 'hold' ? holdAndAnswer : answer)
// The agent's keep-alive timeout, so both keep connections the same way.
server.keepAliveTimeout = 5000
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`bare server listening on http://127.0.0.1:${port}`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
