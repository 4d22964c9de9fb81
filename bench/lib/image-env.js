// The environment the container image gives the agent: the `ENV` instructions of the Dockerfile's
// last stage (the one that ships). Benchmarks run the agent with it, so that what they measure is
// the agent as the image runs it; tests check that glibc takes it as meant.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const DOCKERFILE = join(fileURLToPath(new URL('../..', import.meta.url)), 'Dockerfile')

/**
 * `ENV` variables of the last stage of a Dockerfile's text, in the `ENV NAME=value [NAME=value
 * ...]` form (continuation lines joined, values unquoted; `ENV NAME value` and `$` expansion are
 * not supported and throw, rather than be misread).
 */
export function parseImageEnv(text) {
  const instructions = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
  const lastFrom = instructions.findLastIndex((l) => /^FROM\s/i.test(l))
  const env = {}
  for (const line of instructions.slice(lastFrom + 1)) {
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

/** The image's environment, read from the repository's Dockerfile. */
export function imageEnv() {
  return parseImageEnv(readFileSync(DOCKERFILE, 'utf8'))
}
