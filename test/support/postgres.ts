/**
 * A throwaway PostgreSQL cluster for tests: `initdb` in a temporary
 * directory, `pg_ctl start` listening on a unix socket in that directory only
 * (no TCP port, so parallel runs never collide), torn down with
 * `pg_ctl stop -m immediate` and the directory removed. PostgreSQL refuses
 * to run as root: when root, every server command runs as the `postgres`
 * system user (Debian's package creates it) and the directory is theirs.
 * Nothing is mocked: the catalog talks to a real server.
 */
import { execFile, execFileSync } from 'node:child_process'
import { chownSync, existsSync, readdirSync, rmSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'

const run = promisify(execFile)

export interface TestPostgres {
  /** connection string of a database in the cluster (default: `postgres`) */
  url: (database?: string) => string
  /** a new, empty database; its connection string */
  createDatabase: () => Promise<string>
  stop: () => Promise<void>
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

const asRoot = process.getuid?.() === 0

/** Runs a server command, as `postgres` when we are root. */
async function serverCommand (bin: string, args: string[]): Promise<void> {
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args]
  await run(file, argv, { timeout: 120_000 })
}

function postgresIds (): { uid: number, gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim())
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim())
  return { uid, gid }
}

let counter = 0

/** `durable`: keep fsync on (benchmarks comparing engines); tests run without it. */
export async function startPostgres (opts: { durable?: boolean } = {}): Promise<TestPostgres> {
  const bin = postgresBinDir()
  if (bin == null) throw new Error('PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): apt-get install postgresql')
  const dir = await mkdtemp(join(tmpdir(), 'cdn-pg-'))
  const data = join(dir, 'data')
  if (asRoot) {
    const { uid, gid } = postgresIds()
    chownSync(dir, uid, gid)
  }
  const stopNow = (): void => {
    try {
      execFileSync(asRoot ? 'runuser' : join(bin, 'pg_ctl'), [...(asRoot ? ['-u', 'postgres', '--', join(bin, 'pg_ctl')] : []), '-D', data, 'stop', '-m', 'immediate'], { stdio: 'ignore', timeout: 30_000 })
    } catch {}
    rmSync(dir, { recursive: true, force: true })
  }
  // A test process that dies early still takes its server down.
  process.once('exit', stopNow)
  try {
    await serverCommand(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', ...(opts.durable === true ? [] : ['--no-sync'])])
    // Socket only, in our own directory; fsync off: a test cluster need not survive a power cut.
    const options = `-k ${dir} -c listen_addresses= -p 5432${opts.durable === true ? '' : ' -F'} -c max_connections=200`
    await serverCommand(join(bin, 'pg_ctl'), ['-D', data, '-w', '-t', '120', '-l', join(dir, 'server.log'), '-o', options, 'start'])
  } catch (err) {
    process.off('exit', stopNow)
    stopNow()
    throw err
  }
  const url = (database = 'postgres'): string => `postgresql://postgres@localhost/${database}?host=${encodeURIComponent(dir)}`
  return {
    url,
    async createDatabase () {
      const name = `t${process.pid}_${++counter}`
      const client = new pg.Client({ connectionString: url() })
      await client.connect()
      try {
        await client.query(`CREATE DATABASE ${name}`)
      } finally {
        await client.end()
      }
      return url(name)
    },
    async stop () {
      process.off('exit', stopNow)
      stopNow()
    }
  }
}
