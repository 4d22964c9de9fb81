// A forward proxy that only tunnels (HTTP CONNECT), counting the tunnels it opened.

import * as http from 'node:http'
import * as net from 'node:net'
import type { AddressInfo } from 'node:net'

export interface ConnectProxy {
  server: http.Server
  port: number
  /** Tunnels opened so far. */
  tunnels(): number
}

export async function startConnectProxy(): Promise<ConnectProxy> {
  let tunnels = 0
  const server = http.createServer((_req, res) => res.writeHead(405).end())
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    tunnels++
    const [host, port] = String(req.url).split(':')
    const upstream = net.connect(Number(port), host, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      upstream.write(head)
      upstream.pipe(socket)
      socket.pipe(upstream)
    })
    upstream.on('error', () => socket.destroy())
    socket.on('error', () => upstream.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port, tunnels: () => tunnels }
}
