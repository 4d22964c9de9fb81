// The baseline: a bare node:http server in its own process that answers every request with the
// bytes the agent sends on a cache hit (same body, same Content-Type and Content-Length).
// Usage: node bench/lib/bare-server.js PORT BODYFILE

import { readFileSync } from 'node:fs'
import { createServer } from './node-http.js'

const [port, bodyFile] = process.argv.slice(2)
if (!port || !bodyFile) {
  console.error('usage: node bench/lib/bare-server.js PORT BODYFILE')
  process.exit(2)
}
const body = readFileSync(bodyFile)
const headers = ['Content-Type', 'application/json', 'Content-Length', String(body.length)]

const server = createServer((_req, res) => {
  res.writeHead(200, headers)
  res.end(body)
})
// The agent's keep-alive timeout, so both keep connections the same way.
server.keepAliveTimeout = 5000
server.listen(Number(port), '127.0.0.1', () => {
  console.log(`bare server listening on http://127.0.0.1:${port}`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
