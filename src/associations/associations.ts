// Pod identity associations file (namespace + service account -> IAM role), JSON or YAML.
// The format is a contract shared by the mock EKS Auth server and the agent's STS fallback:
//   {"associations": [{"namespace": "default", "serviceAccount": "app",
//                      "roleArn": "arn:aws:iam::111122223333:role/App", "durationSeconds": 3600}]}

import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'

/** One association: pods running as `namespace/serviceAccount` get credentials for `roleArn`. */
export interface Association {
  /** Kubernetes namespace (DNS-1123 label). */
  namespace: string
  /** Kubernetes service account name (DNS-1123 subdomain). */
  serviceAccount: string
  /** IAM role ARN, `arn:<partition>:iam::<12 digits>:role/<path/>Name`. */
  roleArn: string
  /** Lifetime of issued credentials in seconds, 900..43200; absent = the issuer's default. */
  durationSeconds?: number
}

export interface AssociationsFile {
  associations: Association[]
}

/** A file that cannot be read or does not hold a valid associations document. */
export class AssociationsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'AssociationsError'
  }
}

export const MIN_DURATION_SECONDS = 900
export const MAX_DURATION_SECONDS = 43_200

const ALLOWED_FIELDS = ['namespace', 'serviceAccount', 'roleArn', 'durationSeconds'] as const
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
/** Partition, 12-digit account, optional path, role name of 1..64 IAM name characters. */
const ROLE_ARN = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/((?:[\w+=,.@-]+\/)*)([\w+=,.@-]{1,64})$/

/** Parse and validate associations text. `sourceName` names the file in error messages. */
export function parseAssociations(text: string, sourceName: string): Association[] {
  const doc = parseDocumentText(text, sourceName)
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new AssociationsError(
      `${sourceName}: expected an object with an "associations" list, got ${describe(doc)}`,
    )
  }
  const top = doc as Record<string, unknown>
  for (const key of Object.keys(top)) {
    if (key !== 'associations') {
      throw new AssociationsError(
        `${sourceName}: unknown top-level field "${key}"; allowed: associations`,
      )
    }
  }
  const list = top.associations
  if (!Array.isArray(list)) {
    throw new AssociationsError(
      `${sourceName}: "associations" must be a list, got ${describe(list)}`,
    )
  }
  const seen = new Map<string, number>()
  return list.map((entry: unknown, i) => {
    const a = validateEntry(entry, `associations[${i}]`, sourceName)
    const key = associationKey(a.namespace, a.serviceAccount)
    const first = seen.get(key)
    if (first !== undefined) {
      throw new AssociationsError(
        `${sourceName}: associations[${i}]: duplicate of associations[${first}] ` +
          `(namespace "${a.namespace}", serviceAccount "${a.serviceAccount}"); each pair may appear once`,
      )
    }
    seen.set(key, i)
    return a
  })
}

/** Read and validate an associations file (JSON or YAML, chosen by content). */
export async function loadAssociationsFile(path: string): Promise<Association[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? (err as Error).message
    throw new AssociationsError(`${path}: cannot read associations file (${reason})`, {
      cause: err,
    })
  }
  return parseAssociations(text, path)
}

/** Map key for a namespace + service account pair. */
export function associationKey(namespace: string, serviceAccount: string): string {
  return `${namespace}/${serviceAccount}`
}

/** An index for O(1) lookups by namespace + service account. */
export function indexAssociations(list: readonly Association[]): Map<string, Association> {
  const index = new Map<string, Association>()
  for (const a of list) index.set(associationKey(a.namespace, a.serviceAccount), a)
  return index
}

/** Find the association for a pod's namespace and service account (linear scan; see indexAssociations). */
export function findAssociation(
  list: readonly Association[],
  namespace: string,
  serviceAccount: string,
): Association | undefined {
  return list.find((a) => a.namespace === namespace && a.serviceAccount === serviceAccount)
}

/** The parts of an IAM role ARN. */
export interface RoleArnParts {
  partition: string
  accountId: string
  /** Role path including slashes, `/` when none. */
  path: string
  roleName: string
}

/** Split a role ARN; undefined when it is not one. */
export function parseRoleArn(arn: string): RoleArnParts | undefined {
  const m = ROLE_ARN.exec(arn)
  if (m === null) return undefined
  return {
    partition: m[1] as string,
    accountId: m[2] as string,
    path: `/${m[3] ?? ''}`,
    roleName: m[4] as string,
  }
}

/**
 * A stable association id in the EKS shape (`a-` + 17 lowercase base32 characters), derived from
 * the association so it survives reloads and restarts.
 */
export function associationIdOf(a: Association): string {
  const digest = createHash('sha256')
    .update(`${a.namespace}\n${a.serviceAccount}\n${a.roleArn}`)
    .digest()
  return `a-${base32Lower(digest).slice(0, 17)}`
}

function base32Lower(bytes: Uint8Array): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  let out = ''
  let bits = 0
  let value = 0
  for (const b of bytes) {
    value = (value << 8) | b
    bits += 8
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  return out
}

function parseDocumentText(text: string, sourceName: string): unknown {
  const trimmed = text.replace(/^\uFEFF/, '').trim()
  if (trimmed === '') throw new AssociationsError(`${sourceName}: file is empty`)
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return JSON.parse(trimmed)
    } catch (err) {
      throw new AssociationsError(`${sourceName}: invalid JSON: ${(err as Error).message}`, {
        cause: err,
      })
    }
  }
  try {
    return parseYaml(trimmed, { prettyErrors: true, uniqueKeys: true })
  } catch (err) {
    const first = ((err as Error).message.split('\n')[0] ?? '').replace(/:$/, '')
    throw new AssociationsError(`${sourceName}: invalid YAML: ${first}`, { cause: err })
  }
}

function validateEntry(entry: unknown, at: string, src: string): Association {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new AssociationsError(
      `${src}: ${at}: expected an object with namespace, serviceAccount and roleArn, got ${describe(entry)}`,
    )
  }
  const e = entry as Record<string, unknown>
  for (const key of Object.keys(e)) {
    if (!(ALLOWED_FIELDS as readonly string[]).includes(key)) {
      throw new AssociationsError(
        `${src}: ${at}.${key}: unknown field; allowed: ${ALLOWED_FIELDS.join(', ')}`,
      )
    }
  }
  const namespace = e.namespace
  if (typeof namespace !== 'string' || namespace.length > 63 || !DNS1123_LABEL.test(namespace)) {
    throw new AssociationsError(
      `${src}: ${at}.namespace: expected a Kubernetes namespace (lowercase letters, digits and '-', ` +
        `at most 63 characters), got ${describe(namespace)}`,
    )
  }
  const serviceAccount = e.serviceAccount
  if (
    typeof serviceAccount !== 'string' ||
    serviceAccount.length > 253 ||
    !DNS1123_SUBDOMAIN.test(serviceAccount)
  ) {
    throw new AssociationsError(
      `${src}: ${at}.serviceAccount: expected a Kubernetes service account name (lowercase letters, ` +
        `digits, '-' and '.', at most 253 characters), got ${describe(serviceAccount)}`,
    )
  }
  const roleArn = e.roleArn
  if (typeof roleArn !== 'string' || parseRoleArn(roleArn) === undefined) {
    throw new AssociationsError(
      `${src}: ${at}.roleArn: expected an IAM role ARN like ` +
        `arn:aws:iam::111122223333:role/Name, got ${describe(roleArn)}`,
    )
  }
  const out: Association = { namespace, serviceAccount, roleArn }
  if (e.durationSeconds !== undefined) {
    const d = e.durationSeconds
    if (
      typeof d !== 'number' ||
      !Number.isInteger(d) ||
      d < MIN_DURATION_SECONDS ||
      d > MAX_DURATION_SECONDS
    ) {
      throw new AssociationsError(
        `${src}: ${at}.durationSeconds: expected a whole number of seconds from ` +
          `${MIN_DURATION_SECONDS} to ${MAX_DURATION_SECONDS}, got ${describe(d)}`,
      )
    }
    out.durationSeconds = d
  }
  return out
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'an object'
  const s = JSON.stringify(value)
  return s.length > 80 ? `${s.slice(0, 77)}...` : s
}
