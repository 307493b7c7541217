/**
 * The catalog's schema, versioned. `schema_version` holds one row: the
 * version the database is at. Opening a catalog brings it to `SCHEMA_VERSION`
 * by running each later migration in order, in one transaction; a database
 * at a newer version than this code knows is refused (SchemaTooNewError).
 *
 * Version 1 is the baseline: the schema as it stood before versioning.
 * A SQLite catalog made before versioning has no `schema_version`; it is
 * brought to version 1 in place (the idempotent upgrades it always had:
 * missing tables, columns added since the first release, the first tokens
 * table), then stamped. To change the schema, append a migration with both
 * engines' statements and bump nothing else.
 */
import type { DatabaseSync } from 'node:sqlite'
import { SchemaTooNewError } from './errors.ts'
import type { SqlEngine } from './engine.ts'
import { POSTGRES_V1, POSTGRES_V2, POSTGRES_V3, POSTGRES_V4, POSTGRES_V5, SEED_COUNTERS, SQLITE_V1, SQLITE_V2, SQLITE_V3, SQLITE_V4, SQLITE_V5, upgradeSqliteBaseline } from './schema.ts'

interface Migration {
  version: number
  sqlite: (db: DatabaseSync) => void
  postgres: (db: SqlEngine) => Promise<void>
}

const MIGRATIONS: Migration[] = [
  {
    version: 1,
    sqlite: db => {
      db.exec(SQLITE_V1)
      upgradeSqliteBaseline(db)
    },
    postgres: async db => { await db.exec(POSTGRES_V1) }
  },
  {
    version: 2,
    sqlite: db => {
      db.exec(SQLITE_V2)
      db.prepare(SEED_COUNTERS).run(Date.now())
    },
    postgres: async db => {
      await db.exec(POSTGRES_V2)
      await db.prepare(SEED_COUNTERS).run(Date.now())
    }
  },
  {
    version: 3,
    sqlite: db => { db.exec(SQLITE_V3) },
    postgres: async db => { await db.exec(POSTGRES_V3) }
  },
  {
    version: 4,
    sqlite: db => { db.exec(SQLITE_V4) },
    postgres: async db => { await db.exec(POSTGRES_V4) }
  },
  {
    version: 5,
    sqlite: db => { db.exec(SQLITE_V5) },
    postgres: async db => { await db.exec(POSTGRES_V5) }
  }
]

/** The newest schema this code knows. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version

function pending (found: number): Migration[] {
  if (found > SCHEMA_VERSION) throw new SchemaTooNewError(found, SCHEMA_VERSION)
  return MIGRATIONS.filter(m => m.version > found)
}

/** Brings a SQLite catalog to SCHEMA_VERSION (synchronously: it runs while the file is opened). */
export function migrateSqlite (db: DatabaseSync): void {
  db.exec('BEGIN IMMEDIATE')
  try {
    db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL) STRICT')
    const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined
    // No row: a new file, or a catalog from before versioning; the baseline migration handles both.
    const found = row?.version ?? 0
    for (const m of pending(found)) m.sqlite(db)
    if (row == null) db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SCHEMA_VERSION)
    else if (found !== SCHEMA_VERSION) db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION)
    db.exec('COMMIT')
  } catch (err) {
    db.exec('ROLLBACK')
    throw err
  }
}

/** Brings a PostgreSQL catalog to SCHEMA_VERSION (the engine holds its migration lock meanwhile: postgres.ts). */
export async function migratePostgres (db: SqlEngine): Promise<void> {
  await db.transaction(async () => {
    await db.exec('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)')
    const row = await db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined
    const found = row?.version ?? 0
    for (const m of pending(found)) await m.postgres(db)
    if (row == null) await db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SCHEMA_VERSION)
    else if (found !== SCHEMA_VERSION) await db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION)
  })
}

/** The version a catalog is at (0: not versioned or empty). */
export async function schemaVersion (db: SqlEngine): Promise<number> {
  const row = await db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined
  return row?.version ?? 0
}
