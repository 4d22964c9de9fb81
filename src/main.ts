#!/usr/bin/env node
// Process edge: pick the subcommand, run it, turn any start-up problem into one clear line.

import { ConfigError } from './config/values.js'
import { VERSION } from './version.js'

const USAGE = `Usage: pod-identity-agent <command> [flags]

Commands:
  server          run the agent (see: pod-identity-agent server --help)
  initialize      create the pod-id-link0 link with the agent's addresses (alias: init)
  mock-eks-auth   run a local EKS Auth endpoint (real wire format) for development and tests
  mock-sts        run a local STS AssumeRoleWithWebIdentity endpoint (real wire format)
  token           mint a projected-service-account-shaped token signed with a local key
  dev             one-command local demo: mock EKS Auth + token + agent + a real SDK fetching credentials
  version         print the version

Run 'pod-identity-agent <command> --help' for the flags of a command.`

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'server':
      return (await import('./cli/server-command.js')).runServerCommand(rest)
    case 'mock-eks-auth':
      return (await import('./cli/mock-eks-auth-command.js')).runMockEksAuthCommand(rest)
    case 'mock-sts':
      return (await import('./cli/mock-sts-command.js')).runMockStsCommand(rest)
    case 'token':
      return (await import('./cli/token-command.js')).runTokenCommand(rest)
    case 'dev':
      return (await import('./cli/dev-command.js')).runDevCommand(rest)
    case 'initialize':
    case 'init':
      return (await import('./cli/init-command.js')).runInitCommand(rest)
    case 'version':
    case '--version':
      console.log(VERSION)
      return 0
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE)
      return command === undefined ? 2 : 0
    default:
      throw new ConfigError(
        `unknown command "${command}"; expected one of server, initialize, mock-eks-auth, mock-sts, token, dev, version (see pod-identity-agent --help)`,
      )
  }
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
    // Let buffered logs drain, but never hang on a handle some library left open.
    setTimeout(() => process.exit(code), 2000).unref()
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      console.error(`pod-identity-agent: ${err.message}`)
      process.exitCode = 2
    } else {
      const msg = err instanceof Error ? err.message : String(err)
      console.error(`pod-identity-agent: ${msg.split('\n')[0]}`)
      process.exitCode = 1
    }
  },
)
