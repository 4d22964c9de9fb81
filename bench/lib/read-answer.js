// One HTTP/1.1 answer read off a raw socket, for the bench's own load clients (herd-client.js,
// mixed-client.js): they write request bytes themselves so that each simulated pod controls its
// source address and timing, and only need the status and the end of the body.

/**
 * Calls finish(status, reason) once the whole answer (headers + Content-Length bytes) has
 * arrived, or finish(0 | status, reason) when the socket ends or fails first. finish must be
 * idempotent: it may be called again after the first time (end after the answer, say).
 */
export function readAnswer(socket, finish) {
  let buf = Buffer.alloc(0)
  let headerEnd = -1
  let length = -1
  let status = 0
  socket.on('data', (chunk) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    if (headerEnd < 0) {
      headerEnd = buf.indexOf('\r\n\r\n')
      if (headerEnd < 0) return
      const head = buf.subarray(0, headerEnd).toString('latin1')
      status = Number(head.slice(9, 12))
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head)
      length = m ? Number(m[1]) : -1
    }
    if (length >= 0 && buf.length - headerEnd - 4 >= length) finish(status)
  })
  socket.on('end', () => finish(status, status === 0 ? 'closed' : undefined))
  socket.on('error', (err) => finish(0, err.code ?? 'error'))
}
