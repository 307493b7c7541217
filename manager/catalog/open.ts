/**
 * Opens the manager's database and the stores built on it: the catalog,
 * the tokens and the content keys. The daemon holds what this returns and
 * never the engine itself.
 */
import { join } from 'node:path'
import { Catalog, type CatalogInit } from './catalog.ts'
import { ContentLifecycle } from './content-lifecycle.ts'
import type { SqlEngine } from './engine.ts'
import { KeyCustody } from './key-custody.ts'
import { PgEngine } from './postgres.ts'
import { Db } from './sqlite.ts'
import { TokenStore } from './tokens.ts'

/** The SQLite catalog's file name in a manager's data directory. */
export const SQLITE_FILE = 'catalog.db'

export interface OpenCatalog {
  catalog: Catalog
  tokens: TokenStore
  keys: KeyCustody
  /** going visible and being deleted, each with its key and event in one transaction */
  lifecycle: ContentLifecycle
  /** which engine holds the catalog, for logs (never the connection string) */
  engine: 'sqlite' | 'postgres'
  close: () => Promise<void>
}

/** Where the catalog lives: a SQLite file (the default), or a PostgreSQL database. */
export type CatalogLocation = { sqlite: string } | { postgresUrl: string }

/** The catalog of a manager: PostgreSQL when given a connection string, else `catalog.db` in its data directory. */
export function catalogLocation (dataDir: string, databaseUrl?: string): CatalogLocation {
  return databaseUrl != null && databaseUrl !== '' ? { postgresUrl: databaseUrl } : { sqlite: join(dataDir, SQLITE_FILE) }
}

/** Opens an engine and brings its schema to the version this code knows (migrations.ts). */
export async function openEngine (where: CatalogLocation): Promise<SqlEngine> {
  return 'sqlite' in where ? new Db(where.sqlite) : await PgEngine.open(where.postgresUrl)
}

export function storesOn (db: SqlEngine, init: CatalogInit = {}): OpenCatalog {
  const catalog = new Catalog(db, init)
  const keys = new KeyCustody(db)
  const tokens = new TokenStore(db, async e => { await catalog.recordEvent(e) })
  return { catalog, tokens, keys, lifecycle: new ContentLifecycle(catalog, keys), engine: db.dialect.name, close: async () => { await db.close() } }
}

export async function openCatalog (where: CatalogLocation | string, init: CatalogInit = {}): Promise<OpenCatalog> {
  const db = await openEngine(typeof where === 'string' ? { sqlite: where } : where)
  return storesOn(db, init)
}
