// `pod-identity-agent server`: flags -> config -> running agent, until SIGTERM/SIGINT.

import { buildServerConfig } from '../config/server-config.js'
import { ConfigError } from '../config/values.js'
import { nameEnvSource, parseServerArgs, serverUsage } from './server-flags.js'

export async function runServerCommand(argv: string[]): Promise<number> {
  const parsed = parseServerArgs(argv, process.env)
  if (parsed.help) {
    console.log(serverUsage())
    return 0
  }
  let config
  try {
    config = buildServerConfig(parsed.raw, process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ConfigError(`server: ${nameEnvSource(err.message, parsed.fromEnv)}`)
    }
    throw err
  }
  const { startAgent } = await import('../agent.js')
  const agent = await startAgent(config)
  await new Promise<void>((resolve) => {
    const stop = (signal: string): void => {
      agent.logger.info({ event: 'signal', signal }, 'shutting down: finishing in-flight requests')
      resolve()
    }
    process.once('SIGTERM', () => stop('SIGTERM'))
    process.once('SIGINT', () => stop('SIGINT'))
  })
  await agent.close()
  agent.logger.flush()
  return 0
}
