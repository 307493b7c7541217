/**
 * A throwaway PostgreSQL cluster for tests (cli/local-postgres.ts) in a
 * temporary directory, torn down with `pg_ctl stop -m immediate` and the
 * directory removed, also when the test process dies early. Nothing is
 * mocked: the catalog talks to a real server.
 */
import { rmSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startLocalPostgres, stopLocalPostgresNow } from '../../cli/local-postgres.ts'

export { postgresBinDir } from '../../cli/local-postgres.ts'

export interface TestPostgres {
  /** connection string of a database in the cluster (default: `postgres`) */
  url: (database?: string) => string
  /** a new, empty database; its connection string */
  createDatabase: () => Promise<string>
  stop: () => Promise<void>
}

let counter = 0

/** `durable`: keep fsync on (benchmarks comparing engines); tests run without it. */
export async function startPostgres (opts: { durable?: boolean } = {}): Promise<TestPostgres> {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-pg-'))
  const stopNow = (): void => {
    stopLocalPostgresNow(dir)
    rmSync(dir, { recursive: true, force: true })
  }
  process.once('exit', stopNow)
  try {
    const cluster = await startLocalPostgres({ dir, durable: opts.durable })
    return {
      url: cluster.url,
      createDatabase: async () => await cluster.ensureDatabase(`t${process.pid}_${++counter}`),
      async stop () {
        process.off('exit', stopNow)
        stopNow()
      }
    }
  } catch (err) {
    process.off('exit', stopNow)
    stopNow()
    throw err
  }
}
