import { DatabaseSync } from 'node:sqlite'
import type { SqlEngine, Statement } from './engine.ts'

/**
 * The SQLite engine: the manager's embedded SQL database (one file, WAL). Each store built on it
 * (catalog, tokens, key custody) creates its own tables; this class only opens
 * the file with the settings they all rely on and runs transactions.
 */
export class Db implements SqlEngine {
  private readonly sqlite: DatabaseSync
  private depth = 0
  private closed = false

  constructor (path: string) {
    this.sqlite = new DatabaseSync(path, { enableForeignKeyConstraints: true })
    // WAL lets HTTP readers proceed while a publish writes; NORMAL is durable at checkpoints and
    // cannot corrupt under WAL (the many small commits of a publish then cost no fsync each);
    // sync() makes commits durable where a client is told about them. secure_delete zeroes
    // freed pages, so a destroyed content key does not linger in the database file.
    this.sqlite.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA foreign_keys = ON;
      PRAGMA busy_timeout = 5000;
      PRAGMA secure_delete = ON;
    `)
  }

  exec (sql: string): void {
    this.sqlite.exec(sql)
  }

  prepare (sql: string): Statement {
    return this.sqlite.prepare(sql)
  }

  /**
   * Runs `fn` in one transaction: all of its writes land, or none. A nested
   * call joins the outer transaction, so stores can compose their methods.
   */
  transaction<T> (fn: () => T): T {
    if (this.depth > 0) return fn()
    this.sqlite.exec('BEGIN IMMEDIATE')
    this.depth++
    try {
      const out = fn()
      this.sqlite.exec('COMMIT')
      return out
    } catch (err) {
      this.sqlite.exec('ROLLBACK')
      throw err
    } finally {
      this.depth--
    }
  }

  /**
   * Makes every transaction committed so far survive a power loss, before a
   * client is told it happened (a publish's 201, a delete's 200, a revoked
   * token). Under WAL with synchronous=NORMAL, SQLite fsyncs the WAL before
   * every checkpoint and the database file after it; this runs one.
   */
  sync (): void {
    if (this.depth > 0) throw new Error('sync() inside a transaction would not cover it')
    const r = this.sqlite.prepare('PRAGMA wal_checkpoint(FULL)').get() as { busy: number } | undefined
    // Only another connection can hold the database busy; we are its only one, so this is a bug worth a loud failure.
    if (r == null || r.busy !== 0) throw new Error('the catalog could not be checkpointed: another connection holds it')
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.sqlite.close()
  }
}
