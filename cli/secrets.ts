/**
 * Where the CLI takes secrets from: files and the environment, never argv
 * (which `ps` shows to every user of the machine). A token file holds one
 * token per line; blank lines and lines starting with `#` are skipped.
 */
import { readFile } from 'node:fs/promises'
import { BadInputError } from '../core/errors.ts'

/** Every token in a token file. */
export async function readTokenFile (path: string): Promise<string[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err: any) {
    throw new BadInputError(`cannot read the token file ${path}: ${err?.code === 'ENOENT' ? 'no such file' : String(err?.message ?? err)}`, { cause: err })
  }
  const tokens = text.split(/\r?\n/).map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  if (tokens.some(t => /\s/.test(t))) throw new BadInputError(`${path}: a token is one word per line`)
  return tokens
}

/** The one token of a file (a client's own token). */
export async function readOneToken (path: string): Promise<string> {
  const tokens = await readTokenFile(path)
  if (tokens.length !== 1) throw new BadInputError(`${path} must hold exactly one token (it holds ${tokens.length})`)
  return tokens[0]
}

/** A comma-separated list of tokens from an environment variable. */
export function envTokens (name: string, env: NodeJS.ProcessEnv = process.env): string[] {
  return (env[name] ?? '').split(',').map(t => t.trim()).filter(t => t !== '')
}

/** A client's token: `--token-file F`, else `CDN_TOKEN`; undefined when neither is set. */
export async function clientToken (file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (file != null) return await readOneToken(file)
  const t = env.CDN_TOKEN?.trim()
  return t == null || t === '' ? undefined : t
}

/** The tokens a manager registers at start for one role: from every `--<role>-token-file` and the environment list. */
export async function configuredTokens (files: string[] | undefined, envName: string, env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const out = new Set(envTokens(envName, env))
  for (const f of files ?? []) for (const t of await readTokenFile(f)) out.add(t)
  return [...out]
}
