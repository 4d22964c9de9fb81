import { describe, expect, it } from 'vitest'
import { validateEndpointUrl } from '../../../src/config/values.js'
import {
  normalizeRegion,
  partitionOf,
  resolveEksAuthEndpoint,
} from '../../../src/upstream/endpoint.js'

describe('resolveEksAuthEndpoint defaults', () => {
  it.each([
    ['us-east-1', 'https://eks-auth.us-east-1.api.aws'],
    ['us-west-2', 'https://eks-auth.us-west-2.api.aws'],
    ['il-central-1', 'https://eks-auth.il-central-1.api.aws'],
    ['mx-central-1', 'https://eks-auth.mx-central-1.api.aws'],
    ['cn-north-1', 'https://eks-auth.cn-north-1.api.amazonwebservices.com.cn'],
    ['us-gov-west-1', 'https://eks-auth.us-gov-west-1.api.aws'],
    ['us-gov-east-1', 'https://eks-auth.us-gov-east-1.api.aws'],
    ['eusc-de-east-1', 'https://eks-auth.eusc-de-east-1.api.amazonwebservices.eu'],
    ['us-iso-east-1', 'https://eks-auth.us-iso-east-1.c2s.ic.gov'],
    ['us-isob-east-1', 'https://eks-auth.us-isob-east-1.sc2s.sgov.gov'],
    ['eu-isoe-west-1', 'https://eks-auth.eu-isoe-west-1.cloud.adc-e.uk'],
    ['us-isof-south-1', 'https://eks-auth.us-isof-south-1.csp.hci.ic.gov'],
    // unknown region shapes fall back to the aws partition, as the SDKs do
    ['xx-newregion-1', 'https://eks-auth.xx-newregion-1.api.aws'],
  ])('%s -> %s', (region, expected) => {
    expect(resolveEksAuthEndpoint({ region, env: {} })).toBe(expected)
  })

  it.each([
    ['us-east-1', 'https://eks-auth-fips.us-east-1.api.aws'],
    ['cn-north-1', 'https://eks-auth-fips.cn-north-1.api.amazonwebservices.com.cn'],
    ['us-gov-east-1', 'https://eks-auth-fips.us-gov-east-1.api.aws'],
    ['us-iso-east-1', 'https://eks-auth-fips.us-iso-east-1.c2s.ic.gov'],
  ])('FIPS via AWS_USE_FIPS_ENDPOINT: %s -> %s', (region, expected) => {
    expect(resolveEksAuthEndpoint({ region, env: { AWS_USE_FIPS_ENDPOINT: 'true' } })).toBe(
      expected,
    )
    expect(resolveEksAuthEndpoint({ region, env: { AWS_USE_FIPS_ENDPOINT: 'TRUE' } })).toBe(
      expected,
    )
  })

  it('AWS_USE_FIPS_ENDPOINT=false keeps the normal host', () => {
    expect(
      resolveEksAuthEndpoint({ region: 'us-east-1', env: { AWS_USE_FIPS_ENDPOINT: 'false' } }),
    ).toBe('https://eks-auth.us-east-1.api.aws')
  })

  it.each(['fips-us-east-1', 'us-east-1-fips'])('FIPS via the region name %s', (region) => {
    expect(resolveEksAuthEndpoint({ region, env: {} })).toBe(
      'https://eks-auth-fips.us-east-1.api.aws',
    )
    expect(normalizeRegion(region)).toEqual({ region: 'us-east-1', fips: true })
  })

  it('missing or malformed region', () => {
    expect(() => resolveEksAuthEndpoint({ region: '', env: {} })).toThrow(/Missing Region/)
    expect(() => resolveEksAuthEndpoint({ region: 'evil.com/x', env: {} })).toThrow(
      /invalid region/,
    )
  })

  it('partitionOf', () => {
    expect(partitionOf('us-east-1')).toBe('aws')
    expect(partitionOf('cn-northwest-1')).toBe('aws-cn')
    expect(partitionOf('us-gov-west-1')).toBe('aws-us-gov')
    expect(partitionOf('us-iso-east-1')).toBe('aws-iso')
    expect(partitionOf('fips-us-gov-west-1')).toBe('aws-us-gov')
  })
})

describe('resolveEksAuthEndpoint overrides', () => {
  const env = {
    AWS_ENDPOINT_URL_EKS_AUTH: 'http://127.0.0.1:9001',
    AWS_ENDPOINT_URL: 'http://127.0.0.1:9002',
  }

  it('--endpoint beats both env vars', () => {
    expect(
      resolveEksAuthEndpoint({ region: 'us-east-1', endpoint: 'https://flag.example/', env }),
    ).toBe('https://flag.example')
  })

  it('AWS_ENDPOINT_URL_EKS_AUTH beats AWS_ENDPOINT_URL', () => {
    expect(resolveEksAuthEndpoint({ region: 'us-east-1', env })).toBe('http://127.0.0.1:9001')
  })

  it('AWS_ENDPOINT_URL is used alone', () => {
    expect(
      resolveEksAuthEndpoint({
        region: 'us-east-1',
        env: { AWS_ENDPOINT_URL: 'http://127.0.0.1:9002/prefix' },
      }),
    ).toBe('http://127.0.0.1:9002/prefix')
  })

  it('empty values are ignored', () => {
    expect(
      resolveEksAuthEndpoint({
        region: 'us-east-1',
        endpoint: '',
        env: { AWS_ENDPOINT_URL_EKS_AUTH: '', AWS_ENDPOINT_URL: ' ' },
      }),
    ).toBe('https://eks-auth.us-east-1.api.aws')
  })

  it('AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true skips the env vars but not the flag', () => {
    const ignoring = { ...env, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' }
    expect(resolveEksAuthEndpoint({ region: 'us-east-1', env: ignoring })).toBe(
      'https://eks-auth.us-east-1.api.aws',
    )
    expect(
      resolveEksAuthEndpoint({ region: 'us-east-1', endpoint: 'http://x:1', env: ignoring }),
    ).toBe('http://x:1')
  })

  it('FIPS with a custom endpoint is refused', () => {
    expect(() =>
      resolveEksAuthEndpoint({
        region: 'us-east-1',
        endpoint: 'http://127.0.0.1:1',
        env: { AWS_USE_FIPS_ENDPOINT: 'true' },
      }),
    ).toThrow('FIPS and custom endpoint are not supported')
    expect(() => resolveEksAuthEndpoint({ region: 'fips-us-east-1', env })).toThrow(
      'FIPS and custom endpoint are not supported',
    )
  })

  it('an invalid override is refused with the source named', () => {
    expect(() =>
      resolveEksAuthEndpoint({
        region: 'us-east-1',
        env: { AWS_ENDPOINT_URL_EKS_AUTH: 'ftp://x' },
      }),
    ).toThrow(/AWS_ENDPOINT_URL_EKS_AUTH/)
    expect(() =>
      resolveEksAuthEndpoint({ region: 'us-east-1', endpoint: 'nope', env: {} }),
    ).toThrow(/--endpoint/)
  })
})

describe('validateEndpointUrl', () => {
  it('accepts http and https URLs', () => {
    expect(validateEndpointUrl('https://eks-auth.us-east-1.api.aws').host).toBe(
      'eks-auth.us-east-1.api.aws',
    )
    expect(validateEndpointUrl('http://[::1]:8080/p').host).toBe('[::1]:8080')
  })

  it.each([
    ['not a url', /not an absolute URL/],
    ['ftp://host', /scheme must be http or https/],
    ['https://host/?a=b', /query string or fragment/],
    ['https://host/#x', /query string or fragment/],
  ])('refuses %s', (value, message) => {
    expect(() => validateEndpointUrl(value)).toThrow(message)
  })

  it('refuses user info without echoing it', () => {
    let msg = ''
    try {
      validateEndpointUrl('https://user:s3cret@host')
    } catch (err) {
      msg = (err as Error).message
    }
    expect(msg).toMatch(/user name or password/)
    expect(msg).not.toContain('s3cret')
  })
})
