import { UsageError } from '../config.js'
import { StartupError } from '../errors.js'

/** A failure that is the user's to fix (exit 2) or the world's (exit 1): one line, no stack. */
export class CliError extends Error {
  constructor (message: string, readonly exitCode = 1) { super(message) }
}

export function exitWith (err: unknown): never {
  const code = err instanceof UsageError ? 2 : err instanceof CliError ? err.exitCode : 1
  const known = err instanceof UsageError || err instanceof CliError || err instanceof StartupError
  const message = err instanceof Error ? err.message : String(err)
  process.stderr.write(`countd: ${message}\n`)
  if (!known && process.env.COUNTD_DEBUG !== undefined && err instanceof Error) process.stderr.write(`${err.stack}\n`)
  process.exit(code)
}
