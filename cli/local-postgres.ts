/**
 * A PostgreSQL cluster of our own on this machine: `initdb` in a directory,
 * `pg_ctl start` listening on a unix socket in that directory only (no TCP
 * port, so several never collide), `pg_ctl stop` at the end. PostgreSQL
 * refuses to run as root: when root, every server command runs as the
 * `postgres` system user (Debian's `postgresql` package creates it) and the
 * directory is theirs. `cdn up --postgres` runs its managers on one; the
 * tests and benchmarks start throwaway ones.
 */
import { execFile, execFileSync } from 'node:child_process'
import { chownSync, existsSync, readdirSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { CdnError } from '../core/errors.ts'

const run = promisify(execFile)

export class LocalPostgresError extends CdnError {
  constructor (message: string, options?: ErrorOptions) { super(message, 'ERR_POSTGRES', 500, options) }
}

export interface LocalPostgres {
  /** the cluster's directory (data, socket, server log) */
  dir: string
  /** connection string of a database in the cluster (default: `postgres`) */
  url: (database?: string) => string
  /** creates database `name` unless it exists; its connection string */
  ensureDatabase: (name: string) => Promise<string>
  /** fast shutdown (`immediate`: no checkpoint, for throwaway clusters) */
  stop: (mode?: 'fast' | 'immediate') => Promise<void>
}

/** The directory of `initdb` and `pg_ctl`: on PATH, else the newest /usr/lib/postgresql/<version>/bin. */
export function postgresBinDir (): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir !== '' && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir
  }
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root).filter(v => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
  for (const v of versions) if (existsSync(join(root, v, 'bin', 'initdb'))) return join(root, v, 'bin')
  return undefined
}

const asRoot = (): boolean => process.getuid?.() === 0

/** `file args`, as `postgres` when we are root. */
function asServer (file: string, args: string[]): [string, string[]] {
  return asRoot() ? ['runuser', ['-u', 'postgres', '--', file, ...args]] : [file, args]
}

async function serverCommand (file: string, args: string[]): Promise<void> {
  const [f, a] = asServer(file, args)
  try {
    await run(f, a, { timeout: 120_000 })
  } catch (err: any) {
    throw new LocalPostgresError(`${file.split('/').at(-1)} failed: ${String(err?.stderr ?? err?.message ?? err).trim().slice(0, 400)}`, { cause: err })
  }
}

export interface LocalPostgresOptions {
  /** where the cluster lives; an initialised cluster there is started again */
  dir: string
  /** keep fsync on (benchmarks, demos); throwaway test clusters run without it */
  durable?: boolean
}

/** Starts (initialising it first when new) a cluster in `dir`. */
export async function startLocalPostgres (o: LocalPostgresOptions): Promise<LocalPostgres> {
  const bin = postgresBinDir()
  if (bin == null) throw new LocalPostgresError('PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): apt-get install postgresql')
  const dir = resolve(o.dir)
  const data = join(dir, 'data')
  await mkdir(dir, { recursive: true })
  if (asRoot()) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
    chownSync(dir, uid, gid)
    try {
      execFileSync('runuser', ['-u', 'postgres', '--', 'test', '-w', dir], { stdio: 'ignore' })
    } catch (err) {
      throw new LocalPostgresError(`the postgres user cannot reach ${dir}: put the cluster under a directory whose parents everyone may enter (e.g. /tmp)`, { cause: err })
    }
  }
  if (!existsSync(join(data, 'PG_VERSION'))) {
    await serverCommand(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', ...(o.durable === true ? [] : ['--no-sync'])])
  }
  // Socket only, in our own directory: nothing else on this host can reach it by accident.
  const options = `-k ${dir} -c listen_addresses= -p 5432${o.durable === true ? '' : ' -F'} -c max_connections=200`
  await serverCommand(join(bin, 'pg_ctl'), ['-D', data, '-w', '-t', '120', '-l', join(dir, 'server.log'), '-o', options, 'start'])
  const url = (database = 'postgres'): string => `postgresql://postgres@localhost/${database}?host=${encodeURIComponent(dir)}`
  return {
    dir,
    url,
    async ensureDatabase (name) {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new LocalPostgresError(`invalid database name ${name}`)
      const client = new pg.Client({ connectionString: url() })
      await client.connect()
      try {
        const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])
        if (found.rowCount === 0) await client.query(`CREATE DATABASE ${name}`)
      } finally {
        await client.end()
      }
      return url(name)
    },
    async stop (mode = 'fast') {
      await serverCommand(join(bin, 'pg_ctl'), ['-D', data, 'stop', '-m', mode])
    }
  }
}

/** Stops a cluster from an exit handler (synchronous; errors ignored: the process is going anyway). */
export function stopLocalPostgresNow (dir: string, mode: 'fast' | 'immediate' = 'immediate'): void {
  const bin = postgresBinDir()
  if (bin == null) return
  const [f, a] = asServer(join(bin, 'pg_ctl'), ['-D', join(resolve(dir), 'data'), 'stop', '-m', mode])
  try {
    execFileSync(f, a, { stdio: 'ignore', timeout: 30_000 })
  } catch {}
}
