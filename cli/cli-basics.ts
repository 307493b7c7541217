/**
 * What every `cdn` invocation needs whatever the command: its version, one
 * line (not a stack trace) for failures nobody caught, and checks that turn
 * a crash deep in a stream into a clear message up front.
 */
import { readFileSync } from 'node:fs'
import { access, stat } from 'node:fs/promises'
import { constants } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { BadInputError, CdnError, describeError } from '../core/errors.ts'

export function cliVersion (): string {
  const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version?: string }
  return `${pkg.version ?? 'unknown'} (node ${process.version})`
}

/**
 * An error no code path caught (an 'error' event without a listener, a
 * rejected promise nobody awaited) still ends the command with one line and
 * exit code 1; the stack only when asked for with --verbose or CDN_LOG_LEVEL.
 */
export function onUnexpectedError (verbose: () => boolean): void {
  const die = (err: unknown): void => {
    const code = err instanceof CdnError ? ` [${err.code}]` : ''
    const detail = verbose() || process.env.CDN_LOG_LEVEL != null ? `\n${err instanceof Error ? String(err.stack) : String(err)}` : ''
    process.stderr.write(`cdn: ${describeError(err)}${code}${detail}\n`)
    process.exit(1)
  }
  process.on('uncaughtException', die)
  process.on('unhandledRejection', die)
}

/** Fails in one line when `file` cannot be created: its directory is missing, not a directory, or not writable. */
export async function requireWritableDir (file: string): Promise<void> {
  const dir = dirname(resolve(file))
  let isDir = false
  try {
    isDir = (await stat(dir)).isDirectory()
  } catch {
    throw new BadInputError(`cannot write ${file}: the directory ${dir} does not exist`)
  }
  if (!isDir) throw new BadInputError(`cannot write ${file}: ${dir} is not a directory`)
  try {
    await access(dir, constants.W_OK)
  } catch {
    throw new BadInputError(`cannot write ${file}: the directory ${dir} is not writable`)
  }
}
