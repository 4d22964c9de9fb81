import { describe, expect, it } from 'vitest'
import { ForeignHostError } from '../../../src/errors.js'
import { HostCheck, normaliseHost } from '../../../src/server/host-check.js'

const DEFAULT = new HostCheck(['169.254.170.23', 'fd00:ec2::23'], 80)
const MESSAGE =
  'Access Denied. Called agent through invalid address, please use either [169.254.170.23 fd00:ec2::23] address not '

function refusal(check: HostCheck, host: string): ForeignHostError {
  try {
    check.check(host)
  } catch (err) {
    expect(err).toBeInstanceOf(ForeignHostError)
    return err as ForeignHostError
  }
  throw new Error(`host accepted: ${host}`)
}

describe('HostCheck (default bind hosts)', () => {
  it.each([
    '169.254.170.23',
    '169.254.170.23:80',
    '169.254.170.23:8080',
    '[fd00:ec2::23]',
    '[fd00:ec2::23]:80',
    '[fd00:ec2::23]:2703',
    '[FD00:EC2::23]',
    '[FD00:EC2::23]:80',
    'fd00:ec2::23',
  ])('accepts %j', (host) => {
    expect(() => DEFAULT.check(host)).not.toThrow()
  })

  it.each([
    ['', ''],
    ['evil.com', 'evil.com'],
    ['evil.com:80', 'evil.com'],
    ['169.254.170.23.nip.io', '169.254.170.23.nip.io'],
    ['169.254.170.23.nip.io:80', '169.254.170.23.nip.io'],
    ['127.0.0.1', '127.0.0.1'],
    ['localhost', 'localhost'],
    ['169.254.170.2', '169.254.170.2'],
    ['169.254.170.230', '169.254.170.230'],
    ['[fd00:ec2::24]:80', 'fd00:ec2::24'],
    ['[::1]', '::1'],
  ])('refuses %j with 403 AccessDenied naming %j', (host, shown) => {
    const e = refusal(DEFAULT, host)
    expect(e.statusCode).toBe(403)
    expect(e.code).toBe('AccessDenied')
    expect(e.message).toBe(MESSAGE + shown)
  })

  it('refuses host:port:port (not a host:port form)', () => {
    expect(refusal(DEFAULT, '169.254.170.23:80:90').statusCode).toBe(403)
  })

  it('refuses a port that is not digits', () => {
    expect(refusal(DEFAULT, '169.254.170.23:abc').statusCode).toBe(403)
    expect(refusal(DEFAULT, '169.254.170.23:80x').statusCode).toBe(403)
    expect(() => DEFAULT.check('169.254.170.23:')).not.toThrow() // an empty port, as SplitHostPort
  })

  // Regression: text after the closing bracket used to be ignored, so "[fd00:ec2::23]evil.com" was
  // accepted; the reference (SplitHostPort, then trim the brackets) refuses it.
  it('refuses text after the closing bracket', () => {
    expect(refusal(DEFAULT, '[fd00:ec2::23]evil.com').statusCode).toBe(403)
  })
})

describe('HostCheck with other bind hosts', () => {
  it('accepts only the addresses it was given, with any port', () => {
    const c = new HostCheck(['127.0.0.1'], 8080)
    expect(() => c.check('127.0.0.1:8080')).not.toThrow()
    expect(() => c.check('127.0.0.1:9')).not.toThrow()
    expect(() => c.check('127.0.0.1')).not.toThrow()
    const e = refusal(c, '169.254.170.23')
    expect(e.message).toBe(
      'Access Denied. Called agent through invalid address, please use either [127.0.0.1] address not 169.254.170.23',
    )
  })

  it('matches IPv6 bind hosts given in upper case', () => {
    const c = new HostCheck(['FD00:EC2::23'], 80)
    expect(() => c.check('[fd00:ec2::23]:80')).not.toThrow()
    expect(() => c.check('[fd00:ec2::23]')).not.toThrow()
  })
})

describe('normaliseHost', () => {
  it.each([
    ['169.254.170.23:80', '169.254.170.23'],
    ['[fd00:ec2::23]:80', 'fd00:ec2::23'],
    ['[fd00:ec2::23]', 'fd00:ec2::23'],
    ['fd00:ec2::23', 'fd00:ec2::23'],
    ['FD00:EC2::23', 'fd00:ec2::23'],
    ['Example.COM:8080', 'example.com'],
    ['', ''],
  ])('%j -> %j', (raw, host) => {
    expect(normaliseHost(raw)).toBe(host)
  })
})
