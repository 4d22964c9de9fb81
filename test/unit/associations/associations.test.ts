import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  AssociationsError,
  associationIdOf,
  findAssociation,
  indexAssociations,
  loadAssociationsFile,
  parseAssociations,
  parseRoleArn,
} from '../../../src/associations/associations.js'

const ROLE = 'arn:aws:iam::111122223333:role/App'

function errorOf(text: string): string {
  try {
    parseAssociations(text, 'assoc.json')
  } catch (err) {
    expect(err).toBeInstanceOf(AssociationsError)
    return (err as Error).message
  }
  throw new Error('expected a validation error')
}

describe('parseAssociations', () => {
  it('parses JSON', () => {
    const list = parseAssociations(
      JSON.stringify({
        associations: [
          { namespace: 'default', serviceAccount: 'app', roleArn: ROLE, durationSeconds: 3600 },
          {
            namespace: 'kube-system',
            serviceAccount: 'agent.v1',
            roleArn: 'arn:aws-cn:iam::123456789012:role/path/to/R',
          },
        ],
      }),
      'a.json',
    )
    expect(list).toEqual([
      { namespace: 'default', serviceAccount: 'app', roleArn: ROLE, durationSeconds: 3600 },
      {
        namespace: 'kube-system',
        serviceAccount: 'agent.v1',
        roleArn: 'arn:aws-cn:iam::123456789012:role/path/to/R',
      },
    ])
  })

  it('parses YAML, whatever the file name says', () => {
    const yaml = `# pods\nassociations:\n  - namespace: default\n    serviceAccount: app\n    roleArn: ${ROLE}\n    durationSeconds: 900\n`
    expect(parseAssociations(yaml, 'assoc.json')).toEqual([
      { namespace: 'default', serviceAccount: 'app', roleArn: ROLE, durationSeconds: 900 },
    ])
  })

  it('accepts an empty list', () => {
    expect(parseAssociations('associations: []', 'a.yaml')).toEqual([])
  })

  it.each([
    ['', /assoc\.json: file is empty/],
    ['{"associations": [', /assoc\.json: invalid JSON/],
    ['associations: [\n  - a: b\n  c', /assoc\.json: invalid YAML/],
    ['[]', /expected an object with an "associations" list, got a list/],
    ['{"assocs": []}', /unknown top-level field "assocs"; allowed: associations/],
    ['{"associations": {}}', /"associations" must be a list, got an object/],
    ['{"associations": ["x"]}', /associations\[0\]: expected an object/],
    [
      `{"associations": [{"namespace": "default", "serviceAccount": "app", "roleArn": "${ROLE}"}, {"namespace": "default", "serviceAccount": "b", "roleArn": "foo"}]}`,
      /^assoc\.json: associations\[1\]\.roleArn: expected an IAM role ARN like arn:aws:iam::111122223333:role\/Name, got "foo"$/,
    ],
    [
      `{"associations": [{"namespace": "Default", "serviceAccount": "app", "roleArn": "${ROLE}"}]}`,
      /associations\[0\]\.namespace: expected a Kubernetes namespace .* got "Default"/,
    ],
    [
      `{"associations": [{"namespace": "default", "roleArn": "${ROLE}"}]}`,
      /associations\[0\]\.serviceAccount: expected a Kubernetes service account name .* got nothing/,
    ],
    [
      `{"associations": [{"namespace": "default", "serviceAccount": "app", "roleArn": "arn:aws:iam::1234:role/X"}]}`,
      /associations\[0\]\.roleArn: expected an IAM role ARN/,
    ],
    [
      `{"associations": [{"namespace": "default", "serviceAccount": "app", "roleArn": "arn:aws:iam::111122223333:user/X"}]}`,
      /associations\[0\]\.roleArn/,
    ],
    [
      `{"associations": [{"namespace": "default", "serviceAccount": "app", "roleArn": "${ROLE}", "durationSeconds": 60}]}`,
      /associations\[0\]\.durationSeconds: expected a whole number of seconds from 900 to 43200, got 60/,
    ],
    [
      `{"associations": [{"namespace": "default", "serviceAccount": "app", "roleArn": "${ROLE}", "durationSeconds": "3600"}]}`,
      /associations\[0\]\.durationSeconds: .* got "3600"/,
    ],
    [
      `{"associations": [{"namespace": "default", "serviceAccount": "app", "rolearn": "${ROLE}"}]}`,
      /associations\[0\]\.rolearn: unknown field; allowed: namespace, serviceAccount, roleArn, durationSeconds/,
    ],
    [
      `{"associations": [{"namespace": "default", "serviceAccount": "app", "roleArn": "${ROLE}"}, {"namespace": "default", "serviceAccount": "app", "roleArn": "${ROLE}"}]}`,
      /associations\[1\]: duplicate of associations\[0\]/,
    ],
  ])('rejects %j', (text, message) => {
    expect(errorOf(text)).toMatch(message)
  })
})

describe('helpers', () => {
  const list = parseAssociations(
    `{"associations": [{"namespace": "default", "serviceAccount": "app", "roleArn": "${ROLE}"}]}`,
    'x',
  )

  it('finds by namespace and service account', () => {
    expect(findAssociation(list, 'default', 'app')?.roleArn).toBe(ROLE)
    expect(findAssociation(list, 'default', 'other')).toBeUndefined()
    expect(indexAssociations(list).get('default/app')?.roleArn).toBe(ROLE)
  })

  it('derives a stable association id and splits role ARNs', () => {
    const a = list[0]!
    expect(associationIdOf(a)).toMatch(/^a-[a-z2-7]{17}$/)
    expect(associationIdOf({ ...a })).toBe(associationIdOf(a))
    expect(associationIdOf({ ...a, serviceAccount: 'other' })).not.toBe(associationIdOf(a))
    expect(parseRoleArn('arn:aws:iam::111122223333:role/team/App')).toEqual({
      partition: 'aws',
      accountId: '111122223333',
      path: '/team/',
      roleName: 'App',
    })
  })
})

describe('loadAssociationsFile', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'assoc-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('loads a YAML file', async () => {
    const file = join(dir, 'a.yml')
    await writeFile(
      file,
      `associations:\n- {namespace: ns, serviceAccount: sa, roleArn: "${ROLE}"}\n`,
    )
    expect(await loadAssociationsFile(file)).toEqual([
      { namespace: 'ns', serviceAccount: 'sa', roleArn: ROLE },
    ])
  })

  it('names the file when it cannot be read', async () => {
    const file = join(dir, 'missing.json')
    await expect(loadAssociationsFile(file)).rejects.toThrow(
      `${file}: cannot read associations file (ENOENT)`,
    )
  })
})
