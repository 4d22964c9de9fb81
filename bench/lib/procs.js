// Child processes of a benchmark, and what /proc tells about them (CPU ticks, RSS).
// Every process is tracked and killed when the benchmark exits, even on an error or a signal.

import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { request } from 'node:http'

const children = new Set()

function killAll() {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill('SIGKILL')
      } catch {
        // already gone
      }
    }
  }
  children.clear()
}

process.on('exit', killAll)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAll()
    process.exit(130)
  })
}

/** spawn() that registers the child for clean-up; its pid is the program's own (no shell). */
export function spawnTracked(command, args, options = {}) {
  const child = spawn(command, args, options)
  children.add(child)
  child.once('exit', () => children.delete(child))
  // A failed spawn is reported by exitOf/waiters; never crash on an unhandled 'error'.
  child.on('error', () => {})
  return child
}

/** Resolves when the child has exited: { code, signal }. */
export function exitOf(child) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  }
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
    child.once('error', () => resolve({ code: -1, signal: null }))
  })
}

/** SIGTERM, then SIGKILL after graceMs. */
export async function stopChild(child, graceMs = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const done = exitOf(child)
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  try {
    await done
  } finally {
    clearTimeout(timer)
  }
}

let clkTck
/** Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`, 100 on Linux). */
export function clockTicksPerSecond() {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clkTck = 100
    }
  }
  return clkTck
}

/** utime + stime of a process (all its threads), in microseconds. */
export function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name (field 2) may hold spaces: fields are counted after its closing ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(rest[11])
  const stime = Number(rest[12])
  return ((utime + stime) * 1e6) / clockTicksPerSecond()
}

/** { rss, hwm } in bytes from /proc/PID/status (VmRSS, VmHWM). */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (name) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)
    return m ? Number(m[1]) * 1024 : NaN
  }
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

const portsGiven = new Set()

/**
 * A free TCP port on 127.0.0.1 (listen on 0, read it, close), never one this process has handed
 * out before: the kernel may pick a port again once it is closed, and an agent given the same
 * port twice (listener and probes) would exit with EADDRINUSE.
 */
export async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const srv = createServer()
      srv.once('error', reject)
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address()
        srv.close(() => resolve(port))
      })
    })
    if (!portsGiven.has(port)) {
      portsGiven.add(port)
      return port
    }
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Minimal HTTP request on loopback: resolves { status, body } or rejects (connection refused,
 * timeout). No keep-alive, no proxy.
 */
export function httpRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = []
      res.on('data', (c) => chunks.push(c))
      res.on('end', () =>
        resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }),
      )
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${url}`)))
    req.on('error', reject)
    req.end(body)
  })
}

export async function httpJson(url, options = {}) {
  const { status, body } = await httpRequest(url, options)
  if (status !== 200) throw new Error(`${options.method ?? 'GET'} ${url}: HTTP ${status} ${body}`)
  return JSON.parse(body)
}

/** Resolves the first line of a child's stdout that matches re (its match), or rejects. */
export function waitForLine(child, re, timeoutMs) {
  return new Promise((resolve, reject) => {
    let buf = ''
    const onData = (chunk) => {
      buf += chunk.toString('utf8')
      const m = re.exec(buf)
      if (m) {
        cleanup()
        resolve(m)
      } else if (buf.length > 1 << 20) {
        buf = buf.slice(-4096)
      }
    }
    const onExit = (code, signal) => {
      cleanup()
      reject(new Error(`process exited (${code ?? signal}) before printing ${re}: ${buf}`))
    }
    const timer = setTimeout(() => {
      cleanup()
      reject(new Error(`no line matching ${re} within ${timeoutMs} ms: ${buf}`))
    }, timeoutMs)
    function cleanup() {
      clearTimeout(timer)
      child.stdout.off('data', onData)
      child.off('exit', onExit)
    }
    child.stdout.on('data', onData)
    child.once('exit', onExit)
  })
}
