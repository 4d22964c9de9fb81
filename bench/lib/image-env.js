// How the container image runs the agent: the `ENV` instructions of the Dockerfile's last stage
// (the one that ships) and the node flags of its `ENTRYPOINT`. Benchmarks run the agent (and the
// memory floor) that way, so that what they measure is the agent as the image runs it; tests check
// that glibc takes the malloc settings as meant.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const DOCKERFILE = join(ROOT, 'Dockerfile')
/** Where the image keeps the repository's files (the last stage's WORKDIR). */
const IMAGE_ROOT = '/app/'

/** The last stage's instructions, continuation lines joined, comments and blank lines dropped. */
function lastStage(text) {
  const instructions = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  return instructions.slice(instructions.findLastIndex((l) => /^FROM\s/i.test(l)) + 1)
}

/**
 * `ENV` variables of the last stage of a Dockerfile's text, in the `ENV NAME=value [NAME=value
 * ...]` form (values unquoted; `ENV NAME value` and `$` expansion are not supported and throw,
 * rather than be misread).
 */
export function parseImageEnv(text) {
  const env = {}
  for (const line of lastStage(text)) {
    const m = /^ENV\s+(.*)$/i.exec(line)
    if (m === null) continue
    for (const pair of m[1].split(/\s+/)) {
      const kv = /^([A-Za-z_][A-Za-z0-9_]*)=(["']?)([^"'$]*)\2$/.exec(pair)
      if (kv === null) throw new Error(`Dockerfile: cannot read ENV ${JSON.stringify(pair)}`)
      env[kv[1]] = kv[3]
    }
  }
  return env
}

/**
 * The node flags of the last stage's `ENTRYPOINT ["node", flags..., "/app/dist/main.js"]` (exec
 * form only; anything else throws rather than be misread).
 */
export function parseImageNodeArgs(text) {
  const line = lastStage(text).findLast((l) => /^ENTRYPOINT\s/i.test(l))
  if (line === undefined) return []
  const argv = JSON.parse(line.replace(/^ENTRYPOINT\s+/i, ''))
  const main = argv.findIndex((a) => a.endsWith('.js'))
  if (argv[0] !== 'node' || main < 1 || argv.slice(1, main).some((a) => !a.startsWith('--'))) {
    throw new Error(`Dockerfile: cannot read ENTRYPOINT ${line}`)
  }
  return argv.slice(1, main)
}

/** The image's environment, read from the repository's Dockerfile. */
export function imageEnv() {
  return parseImageEnv(readFileSync(DOCKERFILE, 'utf8'))
}

/**
 * The node flags the image starts the agent with, read from the repository's Dockerfile, with
 * the image's paths (`--import=/app/image/...`) turned into this checkout's.
 */
export function imageNodeArgs() {
  return parseImageNodeArgs(readFileSync(DOCKERFILE, 'utf8')).map((a) =>
    a.replace(`=${IMAGE_ROOT}`, `=${join(ROOT, '/')}`),
  )
}
