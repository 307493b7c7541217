/**
 * The seam where a database engine plugs into the catalog. The stores
 * (contents, copies, nodes, events, deletes, tokens, keys) are written
 * against `SqlEngine`, never against a driver: SQLite (`sqlite.ts`, the
 * default, one manager) and PostgreSQL (`postgres.ts`, the road to several
 * managers) both provide it. Statements are written once, in SQL both
 * engines accept, with `?` placeholders; where the dialects differ a store
 * asks `dialect` for the fragment.
 *
 * Every call is asynchronous. A transaction runs on one connection; a
 * statement issued while the current async flow is inside a transaction
 * joins it (the flow is tracked with AsyncLocalStorage, so stores compose
 * their methods without passing a handle around), and a statement from any
 * other flow never lands in it.
 *
 * Nothing outside `manager/catalog/` sees an engine: callers get the stores
 * and `Catalog.transaction`, so "a state change and its event in one
 * transaction" is kept by the stores themselves.
 */

/** A value a statement takes. Booleans are stored as 0/1 integers on both engines. */
export type Param = string | number | bigint | null | Uint8Array

export interface RunResult { changes: number }

/** A statement, prepared lazily by its engine; every call may wait for a connection. */
export interface Statement {
  run (...params: Param[]): Promise<RunResult>
  get (...params: Param[]): Promise<unknown>
  all (...params: Param[]): Promise<unknown[]>
}

/** The SQL fragments that differ between engines. */
export interface Dialect {
  readonly name: 'sqlite' | 'postgres'
  /** A FROM item named `alias` with one text column `value`: the strings of a JSON array given as the next `?`. */
  jsonValues (alias: string): string
  /**
   * An expression for the database's clock in ms since the epoch. Leases and
   * manager liveness are judged on it, so managers on hosts whose clocks
   * disagree still agree on who holds what.
   */
  readonly nowMs: string
}

/** What the rest of the manager may ask of the database as a whole. */
export interface CatalogEngine {
  /**
   * Runs `fn` atomically on one connection; a nested call joins the outer
   * transaction. On PostgreSQL `fn` may run again after a serialization
   * conflict, so it must not act outside the database (use `afterCommit`).
   */
  transaction<T> (fn: () => Promise<T>): Promise<T>
  /** Runs `fn` once the current transaction commits (at once when there is none); dropped on rollback. */
  afterCommit (fn: () => void): void
  /** Makes every committed transaction survive a power loss, before a client is told. */
  sync (): Promise<void>
  close (): Promise<void>
}

/** What a store needs: the engine plus schema statements and prepared queries. */
export interface SqlEngine extends CatalogEngine {
  readonly dialect: Dialect
  /** Runs one or more statements without parameters (schema changes). */
  exec (sql: string): Promise<void>
  prepare (sql: string): Statement
}

/**
 * A mutual exclusion lock for async flows: SQLite has one connection, so a
 * transaction holds it from BEGIN to COMMIT and every other statement waits.
 */
export class AsyncMutex {
  private locked = false
  private readonly waiters: Array<() => void> = []

  get free (): boolean { return !this.locked }

  async acquire (): Promise<void> {
    if (!this.locked) {
      this.locked = true
      return
    }
    await new Promise<void>(resolve => { this.waiters.push(resolve) })
  }

  /** Hands the lock to the next waiter in arrival order, or frees it. */
  release (): void {
    const next = this.waiters.shift()
    if (next != null) next()
    else this.locked = false
  }
}

/** Rewrites `?` placeholders as `$1, $2, …` (no statement of the catalog has a `?` inside a string literal). */
export function numberedPlaceholders (sql: string): string {
  let n = 0
  return sql.replace(/\?/g, () => `$${++n}`)
}
