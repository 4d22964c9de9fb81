import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AssociationsStore, RELOAD_CHECK_MS } from '../../../src/associations/associations-store.js'
import { AssociationsError } from '../../../src/associations/associations.js'
import { ManualClock } from '../../../src/util/clock.js'
import { until } from '../../helpers/until.js'

const ROLE = 'arn:aws:iam::111122223333:role/App'
const doc = (...pairs: [string, string, string?][]) =>
  JSON.stringify({
    associations: pairs.map(([namespace, serviceAccount, roleArn = ROLE]) => ({
      namespace,
      serviceAccount,
      roleArn,
    })),
  })

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pia-assoc-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('AssociationsStore', () => {
  it('refuses a bad file at start-up with the precise problem', async () => {
    const path = join(dir, 'bad.json')
    await writeFile(path, doc(['default', 'app'], ['default', 'app']))
    await expect(AssociationsStore.open({ path, clock: new ManualClock() })).rejects.toThrow(
      AssociationsError,
    )
    await expect(
      AssociationsStore.open({ path: join(dir, 'missing.json'), clock: new ManualClock() }),
    ).rejects.toThrow(/cannot read associations file \(ENOENT\)/)
  })

  it('re-reads a changed file: valid, then broken (the old one stays, said once), then valid again', async () => {
    const path = join(dir, 'live.json')
    await writeFile(path, doc(['default', 'app']))
    const clock = new ManualClock()
    const loaded: number[] = []
    const rejected: string[] = []
    const store = await AssociationsStore.open({
      path,
      clock,
      onLoaded: (n) => loaded.push(n),
      onRejected: (why) => rejected.push(why),
    })
    expect(loaded).toEqual([1])
    expect(store.find('default', 'app')?.roleArn).toBe(ROLE)
    expect(store.find('team', 'worker')).toBeUndefined()

    // A ConfigMap update is an atomic swap of the file.
    await writeFile(`${path}.next`, doc(['default', 'app'], ['team', 'worker']))
    await rename(`${path}.next`, path)
    clock.advance(RELOAD_CHECK_MS)
    await until(() => loaded.length === 2, 'the new file to load')
    expect(store.size).toBe(2)
    expect(store.find('team', 'worker')?.roleArn).toBe(ROLE)

    await writeFile(path, '{"associations": [{"namespace": "x"}]}')
    clock.advance(RELOAD_CHECK_MS)
    await until(() => rejected.length === 1, 'the broken file to be refused')
    expect(rejected[0]).toMatch(/associations\[0\]\.serviceAccount/)
    clock.advance(RELOAD_CHECK_MS)
    await store.check()
    expect(rejected).toHaveLength(1) // the same broken file is reported once
    expect(store.find('team', 'worker')).toBeDefined() // the old associations stay

    await writeFile(path, doc(['other', 'sa']))
    clock.advance(RELOAD_CHECK_MS)
    await until(() => loaded.length === 3, 'the fixed file to load')
    expect(store.find('other', 'sa')).toBeDefined()
    expect(store.find('default', 'app')).toBeUndefined()
    store.close()
    expect(clock.pendingTimers).toBe(0)
  })
})
