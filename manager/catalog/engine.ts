/**
 * The seam where a database engine plugs into the catalog. The stores
 * (contents, copies, nodes, events, deletes, tokens, keys) are written
 * against `SqlEngine`, never against a driver: SQLite (`sqlite.ts`) is the
 * engine today; a second engine (PostgreSQL, for several managers) provides
 * the same three guarantees and its own statements.
 *
 * Nothing outside `manager/catalog/` sees an engine: callers get the stores
 * and `Catalog.transaction`, so "a state change and its event in one
 * transaction" is kept by the stores themselves.
 */
import type { StatementSync } from 'node:sqlite'

/** What the rest of the manager may ask of the database as a whole. */
export interface CatalogEngine {
  /** Runs `fn` atomically; a nested call joins the outer transaction. */
  transaction<T> (fn: () => T): T
  /** Makes every committed transaction survive a power loss, before a client is told. */
  sync (): void
  close (): void
}

/** What a store needs: the engine plus schema statements and prepared queries. */
export interface SqlEngine extends CatalogEngine {
  exec (sql: string): void
  prepare (sql: string): Statement
}

export type Statement = Pick<StatementSync, 'run' | 'get' | 'all'>
