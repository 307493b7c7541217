import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { AsyncMutex, type Dialect, type Param, type SqlEngine, type Statement } from './engine.ts'
import { TransactionScope, type OpenTx } from './transaction-scope.ts'
import { migrateSqlite } from './migrations.ts'

export const sqliteDialect: Dialect = {
  name: 'sqlite',
  jsonValues: alias => `json_each(?) ${alias}`,
  nowMs: 'CAST(ROUND((julianday(\'now\') - 2440587.5) * 86400000.0) AS INTEGER)'
}

/**
 * The SQLite engine: the manager's embedded SQL database (one file, WAL). It
 * opens the file with the settings every store relies on, brings its schema
 * to the version this code knows (migrations.ts), and runs transactions.
 * SQLite calls are synchronous and fast; the engine serialises async flows
 * around its single connection so an open transaction is one flow's alone.
 */
export class Db implements SqlEngine {
  readonly dialect = sqliteDialect
  private readonly sqlite: DatabaseSync
  private readonly lock = new AsyncMutex()
  private readonly scope = new TransactionScope<OpenTx>()
  private readonly cache = new Map<string, StatementSync>()
  private closed = false

  constructor (path: string) {
    this.sqlite = new DatabaseSync(path, { enableForeignKeyConstraints: true })
    // WAL lets HTTP readers proceed while a publish writes; NORMAL is durable at checkpoints and
    // cannot corrupt under WAL (the many small commits of a publish then cost no fsync each);
    // sync() makes commits durable where a client is told about them. secure_delete zeroes
    // freed pages, so a destroyed content key does not linger in the database file.
    try {
      this.sqlite.exec(`
        PRAGMA journal_mode = WAL;
        PRAGMA synchronous = NORMAL;
        PRAGMA foreign_keys = ON;
        PRAGMA busy_timeout = 5000;
        PRAGMA secure_delete = ON;
      `)
      // Opening is the one synchronous moment: nothing else can use the engine before it returns.
      migrateSqlite(this.sqlite)
    } catch (err) {
      this.sqlite.close()
      throw err
    }
  }

  async exec (sql: string): Promise<void> {
    await this.use(() => { this.sqlite.exec(sql) })
  }

  prepare (sql: string): Statement {
    const stmt = (): StatementSync => {
      let s = this.cache.get(sql)
      if (s == null) this.cache.set(sql, s = this.sqlite.prepare(sql))
      return s
    }
    return {
      run: async (...p: Param[]) => this.use(() => ({ changes: Number(stmt().run(...p).changes) })),
      get: async (...p: Param[]) => this.use(() => stmt().get(...p)),
      all: async (...p: Param[]) => this.use(() => stmt().all(...p))
    }
  }

  /**
   * Runs `fn` in one transaction: all of its writes land, or none. A nested
   * call (the same async flow) joins the outer transaction, so stores can
   * compose their methods.
   */
  async transaction<T> (fn: () => Promise<T>): Promise<T> {
    if (this.scope.current != null) return await fn()
    await this.lock.acquire()
    const tx: OpenTx = { open: true, after: [] }
    try {
      this.sqlite.exec('BEGIN IMMEDIATE')
      let out: T
      try {
        out = await this.scope.run(tx, fn)
        this.sqlite.exec('COMMIT')
      } catch (err) {
        this.sqlite.exec('ROLLBACK')
        throw err
      }
      return out
    } finally {
      tx.open = false
      this.lock.release()
      if (!this.closed) for (const f of tx.after) f()
    }
  }

  afterCommit (fn: () => void): void {
    this.scope.afterCommit(fn)
  }

  /**
   * Makes every transaction committed so far survive a power loss, before a
   * client is told it happened (a publish's 201, a delete's 200, a revoked
   * token). Under WAL with synchronous=NORMAL, SQLite fsyncs the WAL before
   * every checkpoint and the database file after it; this runs one.
   */
  async sync (): Promise<void> {
    this.scope.assertOutside('sync()')
    const r = await this.use(() => this.sqlite.prepare('PRAGMA wal_checkpoint(FULL)').get() as { busy: number } | undefined)
    // Only another connection can hold the database busy; we are its only one, so this is a bug worth a loud failure.
    if (r == null || r.busy !== 0) throw new Error('the catalog could not be checkpointed: another connection holds it')
  }

  async close (): Promise<void> {
    if (this.closed) return
    // A transaction in flight finishes first: closing under it would lose its writes.
    await this.lock.acquire()
    try {
      this.closed = true
      this.sqlite.close()
    } finally {
      this.lock.release()
    }
  }

  /**
   * Runs one synchronous call on the connection: at once inside this flow's
   * transaction, otherwise when no other flow's transaction is open.
   */
  private async use<T> (fn: () => T): Promise<T> {
    if (this.scope.current != null) return fn()
    if (this.lock.free) return fn()
    await this.lock.acquire()
    try {
      return fn()
    } finally {
      this.lock.release()
    }
  }
}
