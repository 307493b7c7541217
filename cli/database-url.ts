/**
 * The manager's PostgreSQL connection string. It may hold a password, so it
 * never travels in argv (which `ps` shows to every user): it comes from a
 * file (`--database-url-file`, first line) or from `CDN_DATABASE_URL`, and
 * no message ever repeats it.
 */
import { readFile } from 'node:fs/promises'
import { BadInputError } from '../core/errors.ts'

export const DATABASE_URL_ENV = 'CDN_DATABASE_URL'

function check (url: string, where: string): string {
  if (!/^postgres(ql)?:\/\//i.test(url)) throw new BadInputError(`${where} must hold a postgres:// or postgresql:// connection string`)
  return url
}

/** The connection string from `file`, else the environment; undefined when neither is given (SQLite). */
export async function databaseUrl (file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (file != null) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err: any) {
      throw new BadInputError(`cannot read the database URL file ${file}: ${err?.code === 'ENOENT' ? 'no such file' : String(err?.code ?? 'unreadable')}`, { cause: err })
    }
    const line = text.split(/\r?\n/).map(l => l.trim()).find(l => l !== '' && !l.startsWith('#'))
    if (line == null) throw new BadInputError(`${file} holds no connection string`)
    return check(line, file)
  }
  const v = env[DATABASE_URL_ENV]?.trim()
  return v == null || v === '' ? undefined : check(v, DATABASE_URL_ENV)
}
