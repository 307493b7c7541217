import pg from 'pg'
import { CdnError, describeError } from '../../core/errors.ts'
import { CatalogUnavailableError } from './errors.ts'
import { numberedPlaceholders, type Dialect, type Param, type SqlEngine, type Statement } from './engine.ts'
import { TransactionScope, type OpenTx } from './transaction-scope.ts'
import { migratePostgres } from './migrations.ts'

export const postgresDialect: Dialect = {
  name: 'postgres',
  jsonValues: alias => `jsonb_array_elements_text(CAST(? AS jsonb)) AS ${alias} (value)`,
  nowMs: 'CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)'
}

/** Serialization failure and deadlock: the transaction is retried from the start. */
const RETRYABLE = new Set(['40001', '40P01'])
const MAX_ATTEMPTS = 12
/** Any number works: the advisory lock managers sharing a database take to migrate it one at a time. */
const MIGRATION_LOCK = 0x43444e31

// COUNT and BIGINT columns come back as int8, SUM as numeric; the catalog's
// figures (bytes, milliseconds, counts) all fit a double exactly.
const INT8 = 20
const NUMERIC = 1700
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8 || oid === NUMERIC) return (v: string) => Number(v)
    return pg.types.getTypeParser(oid, format as 'text')
  }) as typeof pg.types.getTypeParser
}

interface Tx extends OpenTx { client: pg.PoolClient }

type Queryable = Pick<pg.Pool, 'query'>

/**
 * The PostgreSQL engine: a pool of connections to one database. A statement
 * outside a transaction takes any connection; a transaction holds one from
 * BEGIN to COMMIT, runs SERIALIZABLE (so concurrent flows, and later several
 * managers, see the same outcomes as SQLite's one-at-a-time transactions) and
 * is retried when PostgreSQL reports a serialization conflict.
 */
export class PgEngine implements SqlEngine {
  readonly dialect = postgresDialect
  private readonly pool: pg.Pool
  private readonly scope = new TransactionScope<Tx>()
  private readonly names = new Map<string, string>()
  private closed = false

  private constructor (pool: pg.Pool) {
    this.pool = pool
  }

  /** Connects, checks the server answers and brings the schema to the version this code knows. */
  static async open (connectionString: string, opts: { max?: number } = {}): Promise<PgEngine> {
    // Two connections at least: opening holds one for the migration lock while the migration runs on another.
    const pool = new pg.Pool({ connectionString, max: Math.max(2, opts.max ?? 8), types, connectionTimeoutMillis: 10_000 })
    // An idle connection that dies (server restart) must not crash the manager; the next query reconnects.
    pool.on('error', () => {})
    const engine = new PgEngine(pool)
    try {
      await engine.migrate()
      return engine
    } catch (err) {
      await pool.end()
      if (err instanceof CdnError) throw err
      // pg's messages name the host and user, never the password.
      throw new CatalogUnavailableError(`cannot open the PostgreSQL catalog: ${describeError(err)}`, { cause: err })
    }
  }

  /**
   * Brings the schema up to date while holding an advisory lock on a
   * connection of its own: managers starting together take turns, and each
   * migration transaction starts (takes its snapshot) only once the lock is
   * held, so it sees what the one before it committed.
   */
  private async migrate (): Promise<void> {
    const lock = await this.pool.connect()
    try {
      await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK])
      try {
        await migratePostgres(this)
      } finally {
        await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK])
      }
    } finally {
      lock.release()
    }
  }

  async exec (sql: string): Promise<void> {
    await this.conn().query(sql)
  }

  prepare (sql: string): Statement {
    const text = numberedPlaceholders(sql)
    let name = this.names.get(text)
    if (name == null) this.names.set(text, name = `cdn_${this.names.size + 1}`)
    const query = async (params: Param[]): Promise<pg.QueryResult> => this.conn().query({ name, text, values: params.map(toPg) })
    return {
      run: async (...p: Param[]) => ({ changes: (await query(p)).rowCount ?? 0 }),
      get: async (...p: Param[]) => fromPgRow((await query(p)).rows[0]),
      all: async (...p: Param[]) => (await query(p)).rows.map(fromPgRow)
    }
  }

  async transaction<T> (fn: () => Promise<T>): Promise<T> {
    if (this.scope.current != null) return await fn()
    const client = await this.pool.connect()
    let broken: Error | undefined
    try {
      for (let attempt = 1; ; attempt++) {
        const tx: Tx = { open: true, client, after: [] }
        try {
          await client.query('BEGIN ISOLATION LEVEL SERIALIZABLE')
          const out = await this.scope.run(tx, fn)
          await client.query('COMMIT')
          tx.open = false
          for (const f of tx.after) f()
          return out
        } catch (err) {
          tx.open = false
          try {
            await client.query('ROLLBACK')
          } catch (rollbackErr) {
            broken = rollbackErr as Error
            throw err
          }
          if (!RETRYABLE.has((err as { code?: string }).code ?? '') || attempt >= MAX_ATTEMPTS) throw err
          await new Promise(resolve => setTimeout(resolve, Math.random() * 5 * attempt))
        }
      }
    } finally {
      // A connection whose rollback failed is in an unknown state: it is discarded, not reused.
      client.release(broken)
    }
  }

  afterCommit (fn: () => void): void {
    this.scope.afterCommit(fn)
  }

  /** A commit is durable when PostgreSQL answers it (synchronous_commit, the server's default). */
  async sync (): Promise<void> {
    this.scope.assertOutside('sync()')
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.pool.end()
  }

  private conn (): Queryable {
    return this.scope.current?.client ?? this.pool
  }
}

function toPg (p: Param): unknown {
  if (p instanceof Uint8Array && !Buffer.isBuffer(p)) return Buffer.from(p.buffer, p.byteOffset, p.byteLength)
  if (typeof p === 'bigint') return p.toString()
  return p
}

/** BYTEA arrives as a Buffer; the stores hand out plain Uint8Arrays, as SQLite gives them. */
function fromPgRow (row: Record<string, unknown> | undefined): unknown {
  if (row == null) return undefined
  for (const k of Object.keys(row)) {
    const v = row[k]
    if (Buffer.isBuffer(v)) row[k] = new Uint8Array(v.buffer, v.byteOffset, v.byteLength)
  }
  return row
}
