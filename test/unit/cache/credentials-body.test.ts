import { describe, expect, it } from 'vitest'
import { formatExpiration, serializeCredentials } from '../../../src/cache/credentials-body.js'
import { podCredentials } from '../../helpers/deferred-source.js'

const T = Date.UTC(2024, 0, 1, 1, 0, 0)

describe('formatExpiration', () => {
  it.each([
    [T, '2024-01-01T01:00:00Z'],
    [T + 500, '2024-01-01T01:00:00.5Z'],
    [T + 120, '2024-01-01T01:00:00.12Z'],
    [T + 123, '2024-01-01T01:00:00.123Z'],
    [T + 1, '2024-01-01T01:00:00.001Z'],
    [T + 10_000, '2024-01-01T01:00:10Z'],
    [T + 10_100, '2024-01-01T01:00:10.1Z'],
    [Date.UTC(2030, 11, 31, 23, 59, 59, 990), '2030-12-31T23:59:59.99Z'],
    [0, '1970-01-01T00:00:00Z'],
  ])('%i -> %s', (ms, text) => {
    expect(formatExpiration(ms)).toBe(text)
  })

  it('always ends in Z, never +00:00, and parses back to the same instant', () => {
    for (let ms = T; ms < T + 2000; ms += 37) {
      const s = formatExpiration(ms)
      expect(s).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$/)
      expect(s).not.toMatch(/\.\d*0Z$/)
      expect(Date.parse(s)).toBe(ms)
    }
  })
})

describe('serializeCredentials', () => {
  it('writes exactly the five contract keys in order', () => {
    const c = podCredentials(1, T).credentials
    const body = serializeCredentials(c)
    expect(Buffer.isBuffer(body)).toBe(true)
    expect(body.toString('utf8')).toBe(
      `{"AccessKeyId":"ASIATEST1","SecretAccessKey":"${c.secretAccessKey}",` +
        `"Token":"${c.sessionToken}","AccountId":"111122223333","Expiration":"2024-01-01T01:00:00Z"}`,
    )
    expect(Object.keys(JSON.parse(body.toString()))).toEqual([
      'AccessKeyId',
      'SecretAccessKey',
      'Token',
      'AccountId',
      'Expiration',
    ])
  })

  it('leaves out the informational fields (ARN, association, namespace)', () => {
    const text = serializeCredentials(podCredentials(2, T + 500).credentials).toString()
    expect(text).not.toContain('arn:aws')
    expect(text).not.toContain('a-test0001')
    expect(text).not.toContain('default')
    expect(JSON.parse(text).Expiration).toBe('2024-01-01T01:00:00.5Z')
  })

  it('escapes values as JSON and counts bytes, not characters', () => {
    const c = { ...podCredentials(3, T).credentials, sessionToken: 'a"b\\c/é' }
    const body = serializeCredentials(c)
    expect(JSON.parse(body.toString()).Token).toBe('a"b\\c/é')
    expect(body.length).toBe(Buffer.byteLength(body.toString()))
  })
})
