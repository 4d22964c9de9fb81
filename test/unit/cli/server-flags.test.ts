import { describe, expect, it } from 'vitest'
import { buildServerConfig } from '../../../src/config/server-config.js'
import type { RawServerOptions } from '../../../src/config/server-config.js'
import {
  ENV_PREFIX,
  SERVER_FLAGS,
  envName,
  nameEnvSource,
  parseServerArgs,
  serverUsage,
} from '../../../src/cli/server-flags.js'
import { ConfigError } from '../../../src/config/values.js'

function raw(argv: string[], env: NodeJS.ProcessEnv = {}): RawServerOptions {
  const r = parseServerArgs(argv, env)
  if (r.help) throw new Error('help')
  return r.raw
}

function usageError(argv: string[], env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    parseServerArgs(argv, env)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return err as ConfigError
  }
  throw new Error(`accepted: ${argv.join(' ')}`)
}

describe('parseServerArgs flags', () => {
  it('short flags, repeated -b', () => {
    expect(raw(['-c', 'x', '-p', '8080', '-b', '127.0.0.1', '-b', '::1'])).toEqual({
      clusterName: 'x',
      port: '8080',
      bindHosts: ['127.0.0.1', '::1'],
      probePort: undefined,
      metricsAddress: undefined,
      metricsPort: undefined,
      endpoint: undefined,
      maxCacheSize: undefined,
      maxCredentialRetention: undefined,
      maxServiceQps: undefined,
      rotateCredentials: undefined,
      verbosity: undefined,
    })
  })

  it('--bind-hosts=a,b is kept for the config to split', () => {
    const r = raw(['--cluster-name=x', '--bind-hosts=10.0.0.1,10.0.0.2'])
    expect(r.bindHosts).toEqual(['10.0.0.1,10.0.0.2'])
    expect(buildServerConfig(r, { AWS_REGION: 'us-west-2' }).bindHosts).toEqual([
      '10.0.0.1',
      '10.0.0.2',
    ])
  })

  it("the reference chart's args work unchanged", () => {
    const r = raw(['--port', '80', '--cluster-name', 'prod', '--probe-port', '2703', '-v', 'trace'])
    const c = buildServerConfig(r, { AWS_REGION: 'us-west-2' })
    expect(c).toMatchObject({ clusterName: 'prod', port: 80, probePort: 2703, verbosity: 'trace' })
  })

  it('long flags', () => {
    const r = raw([
      '--cluster-name',
      'c',
      '--metrics-address',
      '127.0.0.1',
      '--metrics-port',
      '9100',
      '--endpoint',
      'https://e.example',
      '--max-cache-size',
      '10',
      '--max-credential-retention-before-renewal',
      '1h',
      '--max-service-qps',
      '5',
      '--rotate-credentials',
      '--verbosity',
      'debug',
      '--negative-cache-ttl',
      '10s',
      '--client-miss-rate',
      '4',
      '--client-max-connections',
      '32',
      '--max-request-rate',
      '1000',
    ])
    expect(r).toMatchObject({
      negativeCacheTtl: '10s',
      clientMissRate: '4',
      clientMaxConnections: '32',
      maxRequestRate: '1000',
      clusterName: 'c',
      metricsAddress: '127.0.0.1',
      metricsPort: '9100',
      endpoint: 'https://e.example',
      maxCacheSize: '10',
      maxCredentialRetention: '1h',
      maxServiceQps: '5',
      rotateCredentials: true,
      verbosity: 'debug',
    })
  })

  it('--help and -h', () => {
    expect(parseServerArgs(['--help'], {})).toEqual({ help: true })
    expect(parseServerArgs(['-c', 'x', '-h'], {})).toEqual({ help: true })
  })
})

describe('parseServerArgs env vars', () => {
  it('env names follow the flag names', () => {
    expect(ENV_PREFIX).toBe('POD_IDENTITY_AGENT_')
    expect(envName('cluster-name')).toBe('POD_IDENTITY_AGENT_CLUSTER_NAME')
    expect(envName('max-credential-retention-before-renewal')).toBe(
      'POD_IDENTITY_AGENT_MAX_CREDENTIAL_RETENTION_BEFORE_RENEWAL',
    )
  })

  it('the limits read their env vars, and a flag wins', () => {
    const env = {
      POD_IDENTITY_AGENT_CLIENT_MISS_RATE: '0',
      POD_IDENTITY_AGENT_CLIENT_MAX_CONNECTIONS: '16',
      POD_IDENTITY_AGENT_MAX_REQUEST_RATE: '1000',
      POD_IDENTITY_AGENT_NEGATIVE_CACHE_TTL: '0',
    }
    const r = raw(['-c', 'x', '--client-max-connections', '8'], env)
    expect(r).toMatchObject({
      clientMissRate: '0',
      clientMaxConnections: '8',
      maxRequestRate: '1000',
      negativeCacheTtl: '0',
    })
  })

  it('are used when the flag is absent', () => {
    const env = {
      POD_IDENTITY_AGENT_CLUSTER_NAME: 'from-env',
      POD_IDENTITY_AGENT_PORT: '8081',
      POD_IDENTITY_AGENT_BIND_HOSTS: '127.0.0.1,::1',
      POD_IDENTITY_AGENT_MAX_CREDENTIAL_RETENTION_BEFORE_RENEWAL: '2h',
      POD_IDENTITY_AGENT_ROTATE_CREDENTIALS: 'true',
      POD_IDENTITY_AGENT_VERBOSITY: 'warn',
    }
    const r = raw([], env)
    expect(r).toMatchObject({
      clusterName: 'from-env',
      port: '8081',
      bindHosts: ['127.0.0.1,::1'],
      maxCredentialRetention: '2h',
      rotateCredentials: true,
      verbosity: 'warn',
    })
    expect(buildServerConfig(r, { AWS_REGION: 'us-west-2' })).toMatchObject({
      clusterName: 'from-env',
      port: 8081,
      bindHosts: ['127.0.0.1', '::1'],
      maxCredentialRetentionMs: 7_200_000,
    })
  })

  it('are overridden by the flag', () => {
    const env = {
      POD_IDENTITY_AGENT_CLUSTER_NAME: 'from-env',
      POD_IDENTITY_AGENT_PORT: '8081',
      POD_IDENTITY_AGENT_BIND_HOSTS: '10.9.9.9',
      POD_IDENTITY_AGENT_ROTATE_CREDENTIALS: 'false',
    }
    const r = raw(
      ['-c', 'from-flag', '--port', '9', '-b', '127.0.0.2', '--rotate-credentials'],
      env,
    )
    expect(r).toMatchObject({
      clusterName: 'from-flag',
      port: '9',
      bindHosts: ['127.0.0.2'],
      rotateCredentials: true,
    })
  })

  it('every flag has its env var', () => {
    for (const f of SERVER_FLAGS) {
      if (f.type === 'boolean') continue
      const r = raw([], { [envName(f.name)]: 'v' })
      const got = r[f.key]
      expect(got).toEqual(f.multiple === true ? ['v'] : 'v')
    }
  })

  it('boolean env values', () => {
    for (const v of ['1', 'true', 'YES', 'on']) {
      expect(raw([], { POD_IDENTITY_AGENT_ROTATE_CREDENTIALS: v }).rotateCredentials).toBe(true)
    }
    for (const v of ['0', 'false', 'No', 'off', '']) {
      expect(raw([], { POD_IDENTITY_AGENT_ROTATE_CREDENTIALS: v }).rotateCredentials).toBe(false)
    }
    const e = usageError([], { POD_IDENTITY_AGENT_ROTATE_CREDENTIALS: 'maybe' })
    expect(e.message).toContain('POD_IDENTITY_AGENT_ROTATE_CREDENTIALS')
    expect(e.message).toContain('"maybe"')
  })

  it('unrelated env vars are ignored', () => {
    expect(raw(['-c', 'x'], { CLUSTER_NAME: 'nope', PORT: '1' })).toMatchObject({
      clusterName: 'x',
      port: undefined,
    })
  })
})

describe('parseServerArgs usage errors', () => {
  it('unknown flag is named', () => {
    const e = usageError(['-c', 'x', '--no-such-flag'])
    expect(e.message).toContain('unknown flag --no-such-flag')
    expect(e.message).not.toContain('\n')
    expect(usageError(['-Z']).message).toContain('-Z')
  })

  it('--port without a value needs a value', () => {
    const e = usageError(['-c', 'x', '--port'])
    expect(e.message).toContain('--port')
    expect(e.message).toContain('needs a value')
    expect(usageError(['--port', '--cluster-name', 'x']).message).toContain(
      'flag --port needs a value',
    )
  })

  // BUG (src/cli/server-flags.ts describeParseError): Node's "ambiguous" message for a short flag
  // ("Option '-p' argument is ambiguous.") has no "--name" on its first line, so the message
  // becomes "server: flag a flag needs a value ..." and does not name the flag.
  it('a short flag followed by another flag names the short flag', () => {
    expect(usageError(['-p', '--cluster-name', 'x']).message).toContain('-p')
  })

  it('a value that starts with a dash after a space: says how to write it', () => {
    const e = usageError(['-c', 'x', '--port', '-1'])
    expect(e.message).toContain(
      "flag --port needs a value; to give one that starts with '-', write --port=VALUE",
    )
    expect(e.message).not.toContain('\n')
  })

  it('a boolean flag takes no value', () => {
    expect(usageError(['--rotate-credentials=yes']).message).toContain(
      'flag --rotate-credentials takes no value',
    )
  })

  it('positional arguments are refused', () => {
    expect(usageError(['-c', 'x', 'extra']).message).toContain('unexpected argument extra')
  })
})

describe('nameEnvSource', () => {
  it('names the env var a bad value came from, and leaves flag values alone', () => {
    const fromEnv = new Set(['port'])
    expect(nameEnvSource('--port: "abc" is not a port', fromEnv)).toBe(
      'POD_IDENTITY_AGENT_PORT (--port): "abc" is not a port',
    )
    expect(nameEnvSource('--probe-port: "x" is not a port', fromEnv)).toBe(
      '--probe-port: "x" is not a port',
    )
    expect(nameEnvSource('no AWS region: set AWS_REGION', fromEnv)).toBe(
      'no AWS region: set AWS_REGION',
    )
  })

  it('parseServerArgs reports which flags came from the environment', () => {
    const parsed = parseServerArgs(['-c', 'x', '--port', '81'], {
      POD_IDENTITY_AGENT_PORT: '82',
      POD_IDENTITY_AGENT_MAX_CACHE_SIZE: '5',
    })
    expect(parsed.help).toBe(false)
    if (parsed.help) return
    expect([...parsed.fromEnv]).toEqual(['max-cache-size'])
  })
})

describe('serverUsage', () => {
  it('mentions every flag, its short form and its env var', () => {
    const text = serverUsage()
    for (const f of SERVER_FLAGS) {
      expect(text).toContain(`--${f.name}`)
      expect(text).toContain(envName(f.name))
      if (f.short !== undefined) expect(text).toContain(`-${f.short}, --${f.name}`)
      expect(text).toContain(`default ${f.dflt}`)
    }
    expect(text).toContain('--help')
    expect(text).toContain('AWS_REGION')
  })

  it('the flag table has the reference defaults', () => {
    const d = Object.fromEntries(SERVER_FLAGS.map((f) => [f.name, f.dflt]))
    expect(d).toMatchObject({
      port: '80',
      'probe-port': '2703',
      'metrics-address': '0.0.0.0',
      'metrics-port': '2705',
      'max-cache-size': '2000',
      'max-credential-retention-before-renewal': '3h',
      'max-service-qps': '3',
      'rotate-credentials': 'false',
    })
  })
})
