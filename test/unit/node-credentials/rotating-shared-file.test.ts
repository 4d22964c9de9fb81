// --rotate-credentials: a rewritten shared credentials file is picked up within the re-read interval.

import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { NodeCredentialsError } from '../../../src/errors.js'
import { createRotatingSharedFileProvider } from '../../../src/node-credentials/rotating-shared-file.js'
import { ManualClock } from '../../../src/util/clock.js'

describe('rotating shared credentials file', () => {
  let dir: string
  let file: string
  const saved = { ...process.env }
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pia-creds-'))
    file = join(dir, 'credentials')
    process.env.AWS_SHARED_CREDENTIALS_FILE = file
    process.env.AWS_CONFIG_FILE = join(dir, 'config')
    delete process.env.AWS_PROFILE
  })
  afterEach(async () => {
    process.env = { ...saved }
    await rm(dir, { recursive: true, force: true })
  })

  const write = (id: string) =>
    writeFile(file, `[default]\naws_access_key_id = ${id}\naws_secret_access_key = secret-${id}\n`)

  it('re-reads the file after the interval, not before', async () => {
    const clock = new ManualClock()
    const provider = createRotatingSharedFileProvider({ clock, rereadMs: 60_000 })
    await write('AKIAFIRST')
    expect((await provider()).accessKeyId).toBe('AKIAFIRST')
    await write('AKIASECOND')
    clock.advance(30_000)
    expect((await provider()).accessKeyId).toBe('AKIAFIRST')
    clock.advance(31_000)
    expect((await provider()).accessKeyId).toBe('AKIASECOND')
  })

  it('a broken rewrite keeps the last good keys for a while, then fails clearly', async () => {
    const clock = new ManualClock()
    const provider = createRotatingSharedFileProvider({ clock, rereadMs: 60_000 })
    await write('AKIAGOOD')
    await provider()
    await writeFile(file, 'garbage without a profile\n')
    clock.advance(61_000)
    expect((await provider()).accessKeyId).toBe('AKIAGOOD')
    clock.advance(120_000)
    const err = await provider().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(NodeCredentialsError)
    expect((err as Error).message).toMatch(
      /^unable to read the node's shared credentials file \(profile default\): /,
    )
    expect((err as Error).message).not.toContain('secret-')
  })
})
