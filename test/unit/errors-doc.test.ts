// The README's error table and the codes the agent can produce must not drift apart.

import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { AGENT_ERROR_CODES } from '../../src/errors.js'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
const table = readme.slice(readme.indexOf('### Error codes'), readme.indexOf('### Cache'))

describe('README error table', () => {
  it('documents every code the agent produces', () => {
    for (const code of AGENT_ERROR_CODES) expect(table).toContain(`| \`${code}\` |`)
  })

  it('documents no agent code that does not exist', () => {
    const documented = [...table.matchAll(/^\| [\d, ]+ \| `([A-Za-z]+)` \|/gm)].map((m) => m[1])
    expect(documented.length).toBeGreaterThan(5)
    for (const code of documented) expect(AGENT_ERROR_CODES).toContain(code)
  })
})
