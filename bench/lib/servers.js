// The processes a benchmark talks to: mock EKS Auth, the agent, the bare node:http baseline.
// All on loopback, all started from the built dist/ (npm run bench builds first).

import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { imageEnv, imageNodeArgs } from './image-env.js'
import {
  freePort,
  httpJson,
  httpRequest,
  memoryOf,
  sleep,
  spawnTracked,
  stopChild,
  waitForLine,
} from './procs.js'

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const MAIN = join(ROOT, 'dist', 'main.js')
const BARE = join(ROOT, 'bench', 'lib', 'bare-server.js')

export const NAMESPACE = 'default'
export const SERVICE_ACCOUNT = 'app'
export const ROLE_ARN = 'arn:aws:iam::111122223333:role/BenchApp'
export const CLUSTER = 'bench'

/**
 * [command, args] that runs node with args, under a wrapper command when wrap is given (e.g.
 * ['valgrind', '--tool=cachegrind']: the child's pid is then the wrapper's, which for valgrind is
 * the node process itself).
 */
function nodeCommand(wrap, args) {
  return wrap.length === 0
    ? [process.execPath, args]
    : [wrap[0], [...wrap.slice(1), process.execPath, ...args]]
}

const words = (text) => (text ?? '').split(/\s+/).filter(Boolean)

/**
 * Extra node flags for every agent a benchmark starts (not the bare baseline, not the mock), e.g.
 * BENCH_AGENT_NODE_ARGS='--max-semi-space-size=2' to measure a V8 setting's cost and gain.
 */
const AGENT_NODE_ARGS = words(process.env.BENCH_AGENT_NODE_ARGS)

const SHARE_MODES = ['per-pod', 'per-association']

/**
 * Token verification on the node for every agent a benchmark starts: BENCH_VERIFY=1 adds
 * `--token-jwks <the fixtures' JWKS file> --token-issuer <the fixtures' issuer>`, and
 * BENCH_SHARE=per-pod|per-association adds `--share-credentials` (needs BENCH_VERIFY=1).
 * Undefined when BENCH_VERIFY is not set. An agent whose own args already carry --token-jwks (the
 * burst workload) keeps them.
 */
export const VERIFY = (() => {
  const share = process.env.BENCH_SHARE || undefined
  if (process.env.BENCH_VERIFY !== '1') {
    if (share !== undefined) throw new Error('BENCH_SHARE needs BENCH_VERIFY=1')
    return undefined
  }
  if (share !== undefined && !SHARE_MODES.includes(share)) {
    throw new Error(`BENCH_SHARE=${share}: expected ${SHARE_MODES.join(' or ')}`)
  }
  return {
    share,
    label: `tokens verified on the node (--token-jwks, --token-issuer${share ? `, --share-credentials ${share}` : ''})`,
  }
})()

/** The flags that verify tokens against the fixtures' issuer; share: --share-credentials. */
export function verifyArgs(fx, share) {
  return [
    '--token-jwks',
    fx.jwksFile,
    '--token-issuer',
    fx.issuer,
    ...(share ? ['--share-credentials', share] : []),
  ]
}

/**
 * A second agent that the hot-path and memory workloads measure beside the agent, interleaved in
 * the same run, for an A/B: another build (BENCH_VARIANT_MAIN=path/to/dist/main.js) and/or other
 * node flags (BENCH_VARIANT_NODE_ARGS='--no-maglev'). Undefined when neither is set.
 */
export const VARIANT =
  process.env.BENCH_VARIANT_MAIN === undefined && process.env.BENCH_VARIANT_NODE_ARGS === undefined
    ? undefined
    : {
        main: process.env.BENCH_VARIANT_MAIN ?? MAIN,
        nodeArgs: words(process.env.BENCH_VARIANT_NODE_ARGS),
        label: [
          process.env.BENCH_VARIANT_MAIN !== undefined ? 'other build' : '',
          process.env.BENCH_VARIANT_NODE_ARGS ?? '',
        ]
          .filter(Boolean)
          .join(', '),
      }

/**
 * How the container image runs the agent (the Dockerfile's last-stage `ENV`: glibc malloc
 * settings, NODE_ENV; and its ENTRYPOINT's node flags), for every agent a benchmark starts and for
 * the memory floor; not for the hot path's bare baseline, which is a plain node process.
 * BENCH_IMAGE_ENV=0 runs them without it (glibc's and V8's defaults).
 */
const withImage = process.env.BENCH_IMAGE_ENV !== '0'
export const AGENT_IMAGE_ENV = withImage ? imageEnv() : {}
export const AGENT_IMAGE_NODE_ARGS = withImage ? imageNodeArgs() : []

/** Environment for children: ours, without the caller's AWS settings or proxies. */
function childEnv(extra = {}) {
  const env = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(AWS_|POD_IDENTITY_AGENT_)/.test(k) || /^(https?|no|all)_proxy$/i.test(k)) continue
    env[k] = v
  }
  return { ...env, ...extra }
}

/** A scratch directory removed at exit. */
export function scratchDir() {
  const dir = mkdtempSync(join(tmpdir(), 'pia-bench-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * A signing key, its JWKS and an associations file in dir, and a mint(n) that signs n distinct
 * pod tokens (RS256, the claims a kubelet puts in a pods.eks.amazonaws.com token, each its own pod
 * name and UID); issuer: the tokens' `iss` (for --token-issuer).
 */
export async function createFixtures(dir) {
  const { TokenIssuer, DEFAULT_ISSUER } = await import(
    join(ROOT, 'dist', 'mock', 'token-issuer.js')
  )
  const issuer = await TokenIssuer.generate('RS256')
  const jwksFile = join(dir, 'jwks.json')
  const associationsFile = join(dir, 'associations.json')
  writeFileSync(jwksFile, JSON.stringify(issuer.publicJwks()))
  writeFileSync(
    associationsFile,
    JSON.stringify({
      associations: [{ namespace: NAMESPACE, serviceAccount: SERVICE_ACCOUNT, roleArn: ROLE_ARN }],
    }),
  )
  let next = 0
  async function mint(n, prefix = 'pod') {
    const out = []
    for (let i = 0; i < n; i += 64) {
      const batch = []
      for (let j = i; j < Math.min(n, i + 64); j++) {
        batch.push(
          issuer.mint({
            namespace: NAMESPACE,
            serviceAccount: SERVICE_ACCOUNT,
            podName: `${prefix}-${next++}`,
            expiresInSeconds: 6 * 3600,
          }),
        )
      }
      out.push(...(await Promise.all(batch)))
    }
    return out
  }
  return { dir, jwksFile, associationsFile, issuer: DEFAULT_ISSUER, mint }
}

/** Start mock EKS Auth on a free port; resolves a handle with admin helpers. */
export function startMock(fx, faults = {}) {
  return startMockOf(
    'mock-eks-auth',
    /mock EKS Auth listening on (http:\/\/[0-9.]+:\d+)/,
    fx,
    faults,
  )
}

/** Start mock STS on a free port (same associations and keys); a handle as startMock's. */
export function startMockSts(fx, faults = {}) {
  return startMockOf('mock-sts', /mock STS listening on (http:\/\/[0-9.]+:\d+)/, fx, faults)
}

async function startMockOf(command, listening, fx, faults) {
  const child = spawnTracked(
    process.execPath,
    [
      MAIN,
      command,
      '--associations',
      fx.associationsFile,
      '--jwks',
      fx.jwksFile,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv() },
  )
  const m = await waitForLine(child, listening, 10_000)
  child.stdout.resume()
  const url = m[1]
  const mock = {
    child,
    pid: child.pid,
    url,
    stats: () => httpJson(`${url}/_mock/stats`),
    reset: () => httpJson(`${url}/_mock/reset`, { method: 'POST' }),
    faults: (f) =>
      httpJson(`${url}/_mock/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(f),
      }),
    stop: () => stopChild(child),
  }
  if (Object.keys(faults).length > 0) await mock.faults(faults)
  return mock
}

/**
 * Start the agent (`server`; `main`: another build's dist/main.js) against a mock; logs go to a
 * file (as a container runtime would take them), never through this process. Resolves once /readyz answers 200, with readyMs = ms
 * from spawn() to that answer (polled every 2 ms). With BENCH_VERIFY=1 (VERIFY) it verifies tokens
 * on the node, unless args bring their own --token-jwks.
 * wrap: a command prefix node runs under (see nodeCommand), with readyTimeoutMs, pollMs and
 * stopGraceMs (SIGTERM to SIGKILL) to match its pace.
 */
export async function startAgent(
  fx,
  mockUrl,
  {
    main = MAIN,
    verbosity = 'info',
    args = [],
    nodeArgs = [],
    logFile,
    wrap = [],
    readyTimeoutMs = 15_000,
    pollMs = 2,
    stopGraceMs = 3000,
  } = {},
) {
  const [port, probePort, metricsPort] = [await freePort(), await freePort(), await freePort()]
  const log = logFile ?? join(fx.dir, `agent-${port}.log`)
  const fd = openSync(log, 'a')
  const t0 = performance.now()
  let child
  try {
    child = spawnTracked(
      ...nodeCommand(wrap, [
        ...AGENT_IMAGE_NODE_ARGS,
        ...AGENT_NODE_ARGS,
        ...nodeArgs,
        main,
        'server',
        '-c',
        CLUSTER,
        '-p',
        String(port),
        '-b',
        '127.0.0.1',
        '--probe-port',
        String(probePort),
        '--metrics-port',
        String(metricsPort),
        '--metrics-address',
        '127.0.0.1',
        '--endpoint',
        mockUrl,
        '-v',
        verbosity,
        ...(VERIFY && !args.includes('--token-jwks') ? verifyArgs(fx, VERIFY.share) : []),
        ...args,
      ]),
      {
        stdio: ['ignore', fd, fd],
        env: childEnv({
          ...AGENT_IMAGE_ENV,
          AWS_REGION: 'us-west-2',
          AWS_ACCESS_KEY_ID: 'AKIDBENCHEXAMPLE',
          AWS_SECRET_ACCESS_KEY: 'bench-secret-not-real',
        }),
      },
    )
  } finally {
    closeSync(fd)
  }
  const readyUrl = `http://localhost:${probePort}/readyz`
  const deadline = t0 + readyTimeoutMs
  let readyMs
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `agent exited (${child.exitCode ?? child.signalCode}); its log ends:\n${logTail(log)}`,
      )
    }
    try {
      const r = await httpRequest(readyUrl, { timeoutMs: 500 })
      if (r.status === 200) {
        readyMs = performance.now() - t0
        break
      }
    } catch {
      // not listening yet
    }
    await sleep(pollMs)
  }
  if (readyMs === undefined) {
    await stopChild(child)
    throw new Error(
      `agent not ready within ${readyTimeoutMs / 1000} s; its log ends:\n${logTail(log)}`,
    )
  }
  return {
    child,
    pid: child.pid,
    port,
    probePort,
    metricsPort,
    logFile: log,
    readyMs,
    hostHeader: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}/v1/credentials`,
    memory: () => memoryOf(child.pid),
    metrics: async (timeoutMs = 2000) =>
      (await httpRequest(`http://127.0.0.1:${metricsPort}/metrics`, { timeoutMs })).body,
    stop: () => stopChild(child, stopGraceMs),
  }
}

/**
 * The last lines of an agent's log, for an error message: the scratch directory holding the log
 * is gone once the benchmark exits. V8 trace lines (--trace-gc-nvp) are left out.
 */
function logTail(log, lines = 15) {
  const text = readFileSync(log, 'utf8')
  const kept = text
    .split('\n')
    .filter((l) => l !== '' && !/gc=|"gc":|Memory pool|zone reservations/.test(l))
  return kept
    .slice(-lines)
    .map((l) => `  ${l.slice(0, 400)}`)
    .join('\n')
}

/** GET /v1/credentials with a token; resolves { status, body }. */
export function fetchCredentials(agent, token) {
  return httpRequest(agent.url, {
    headers: { host: agent.hostHeader, authorization: token },
  })
}

/**
 * The bare node:http baseline sending bodyFile's bytes; resolves once it listens. wrap,
 * readyTimeoutMs, stopGraceMs: as for startAgent. hold: it keeps a token, body and headers per
 * distinct Authorization header, as the agent's cache does, and runs as the image runs the agent
 * (environment and V8 flags, not its preloads: the memory floor).
 */
export async function startBare(
  bodyFile,
  { nodeArgs = [], wrap = [], readyTimeoutMs = 10_000, stopGraceMs = 3000, hold = false } = {},
) {
  const port = await freePort()
  // The floor compiles and collects as the agent does (the image's V8 flags), but loads none of
  // the module the image preloads for the agent (undici): it does not use it.
  const args = [
    ...(hold ? AGENT_IMAGE_NODE_ARGS.filter((a) => !a.startsWith('--import=')) : []),
    ...nodeArgs,
    BARE,
    String(port),
    bodyFile,
    ...(hold ? ['hold'] : []),
  ]
  const child = spawnTracked(...nodeCommand(wrap, args), {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: childEnv(hold ? AGENT_IMAGE_ENV : {}),
  })
  await waitForLine(child, /bare server listening/, readyTimeoutMs)
  child.stdout.resume()
  return {
    child,
    pid: child.pid,
    port,
    url: `http://127.0.0.1:${port}/v1/credentials`,
    memory: () => memoryOf(child.pid),
    stop: () => stopChild(child, stopGraceMs),
  }
}

/** Value of a Prometheus sample (first line starting with `name` + space or `{`), or NaN. */
export function metricValue(text, name) {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) {
      return Number(line.slice(line.lastIndexOf(' ') + 1))
    }
  }
  return NaN
}
