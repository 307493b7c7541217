/**
 * Opens the manager's database and the stores built on it: the catalog,
 * the tokens, the content keys, names and their generations, and what
 * several managers share (the pool's identity, its managers, the controller
 * lease). The daemon holds what this returns and never the engine itself.
 */
import { join } from 'node:path'
import { Catalog, type CatalogInit } from './catalog.ts'
import { ContentLifecycle } from './content-lifecycle.ts'
import type { SqlEngine } from './engine.ts'
import { KeyCustody } from './key-custody.ts'
import type { KeySealer } from './key-sealing.ts'
import { PgEngine } from './postgres.ts'
import { Db } from './sqlite.ts'
import { TokenStore } from './tokens.ts'
import { PoolMeta } from './pool-meta.ts'
import { ManagerStore } from './managers.ts'
import { LeaseStore } from './leases.ts'
import { NameStore } from './names.ts'
import { LineageStore } from './lineage.ts'
import { UploadSessionStore } from './upload-sessions.ts'

/** The SQLite catalog's file name in a manager's data directory. */
export const SQLITE_FILE = 'catalog.db'

export interface OpenCatalog {
  catalog: Catalog
  tokens: TokenStore
  keys: KeyCustody
  /** going visible and being deleted, each with its key and event in one transaction */
  lifecycle: ContentLifecycle
  /** the pool's identity and signing sequence */
  poolMeta: PoolMeta
  /** the pool's managers and when each was last seen */
  managers: ManagerStore
  /** duties one manager holds at a time (the replication controller) */
  leases: LeaseStore
  /** names and their generations */
  names: NameStore
  /** each name's lineage key and the chunks it holds (deduplication within a name) */
  lineage: LineageStore
  /** differential uploads in progress */
  sessions: UploadSessionStore
  /** content keys found stored in clear (by a manager from before sealing) and sealed at this open */
  keysSealed: number
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

/**
 * The stores on an open engine. The key store is checked against the master
 * key first (a wrong one refuses to start) and seals keys stored in clear.
 */
export async function storesOn (db: SqlEngine, sealer: KeySealer, init: CatalogInit = {}): Promise<OpenCatalog> {
  const catalog = new Catalog(db, init)
  const keys = new KeyCustody(db, sealer)
  const keysSealed = await keys.prepare()
  const tokens = new TokenStore(db, async e => { await catalog.recordEvent(e) })
  return {
    catalog,
    tokens,
    keys,
    lifecycle: new ContentLifecycle(catalog, keys),
    poolMeta: new PoolMeta(db),
    managers: new ManagerStore(db),
    leases: new LeaseStore(db),
    names: new NameStore(db),
    lineage: new LineageStore(db, sealer),
    sessions: new UploadSessionStore(db),
    keysSealed,
    engine: db.dialect.name,
    close: async () => { await db.close() }
  }
}

export async function openCatalog (where: CatalogLocation | string, sealer: KeySealer, init: CatalogInit = {}): Promise<OpenCatalog> {
  const db = await openEngine(typeof where === 'string' ? { sqlite: where } : where)
  try {
    return await storesOn(db, sealer, init)
  } catch (err) {
    await db.close()
    throw err
  }
}
