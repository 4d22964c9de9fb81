// Argument parsing for every command: node:util parseArgs, strict, with its errors reworded as one
// line that names the flag and points at the command's --help.

import { parseArgs } from 'node:util'
import { ConfigError } from '../config/values.js'

export type FlagOptions = Record<
  string,
  { type: 'string' | 'boolean'; short?: string; multiple?: boolean; default?: string | boolean }
>

/** parseArgs for `command`: flags only; a bad argument throws a one-line ConfigError. */
export function parseFlags<T extends FlagOptions>(command: string, argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values
  } catch (err) {
    throw new ConfigError(
      `${command}: ${describeParseError(err)} (see pod-identity-agent ${command} --help)`,
    )
  }
}

/** node:util parseArgs errors, reworded as one line that names the flag. */
function describeParseError(err: unknown): string {
  const e = err as { code?: string; message?: string }
  const msg = (e.message ?? String(err)).split('\n')[0] ?? ''
  const quoted = /'([^']+)'/.exec(msg)?.[1]
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown flag ${quoted ?? msg}`
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const flag =
        /(--[A-Za-z0-9-]+)/.exec(msg)?.[1] ?? /'(-[A-Za-z0-9])'/.exec(msg)?.[1] ?? 'a flag'
      if (msg.includes('does not take an argument')) return `flag ${flag} takes no value`
      // `--port -1`: parseArgs will not take a value that starts with a dash after a space
      if (msg.includes('ambiguous')) {
        return `flag ${flag} needs a value; to give one that starts with '-', write ${flag}=VALUE`
      }
      return `flag ${flag} needs a value`
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${quoted ?? ''}`.trim()
    default:
      return msg
  }
}

/** parseArgs options for flags that each take one value, plus -h/--help. */
export function valueFlags<const K extends string>(
  ...names: K[]
): Record<K, { type: 'string' }> & { help: { type: 'boolean'; short: 'h' } } {
  const options = Object.fromEntries(names.map((n) => [n, { type: 'string' }]))
  return { ...options, help: { type: 'boolean', short: 'h' } } as Record<K, { type: 'string' }> & {
    help: { type: 'boolean'; short: 'h' }
  }
}
