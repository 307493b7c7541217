/**
 * `cdn manager migrate`: copies a stopped single-manager pool's SQLite
 * catalog into an empty PostgreSQL database, every table and row (contents,
 * chunks, copies, nodes, removed nodes, tokens, content keys, tombstones,
 * pending deletes, events with their ids), in one PostgreSQL transaction:
 * a failure leaves the target empty, so the copy can simply be run again.
 *
 * The source must not be in use. SQLite's own file lock says so: the copy
 * opens it in exclusive locking mode and takes an exclusive lock at once,
 * which fails while any other process (a running manager) has the file
 * open, and keeps any manager from opening it until the copy is done.
 */
import { existsSync } from 'node:fs'
import { DatabaseSync } from 'node:sqlite'
import pg from 'pg'
import { describeError } from '../../core/errors.ts'
import { CatalogUnavailableError, MigrateRefusedError } from './errors.ts'
import type { Param } from './engine.ts'
import { migrateSqlite } from './migrations.ts'
import { PgEngine } from './postgres.ts'

/** Tables in an order that satisfies their foreign keys, with the columns copied. */
const TABLES: ReadonlyArray<{ name: string, columns: readonly string[] }> = [
  { name: 'nodes', columns: ['peer_id', 'http', 'zone', 'capacity', 'used', 'egress_cap', 'egress_rate', 'blobs', 'state', 'last_seen', 'joined_at', 'addrs', 'drain', 'demand'] },
  { name: 'removed_nodes', columns: ['peer_id', 'removed_at'] },
  { name: 'contents', columns: ['id', 'state', 'name', 'type', 'size', 'chunk_size', 'chunk_count', 'replicas', 'created_at', 'publisher', 'manifest', 'expires_at', 'private', 'owner', 'manager'] },
  { name: 'chunks', columns: ['content', 'idx', 'cid', 'size'] },
  { name: 'copies', columns: ['content', 'cid', 'node', 'state'] },
  { name: 'content_keys', columns: ['content', 'key', 'stored_at'] },
  { name: 'tokens', columns: ['id', 'hash', 'role', 'name', 'created_at', 'expires_at', 'revoked_at'] },
  { name: 'tombstones', columns: ['id', 'deleted_at', 'reason'] },
  { name: 'pending_deletes', columns: ['content', 'node', 'blobs'] },
  { name: 'events', columns: ['id', 'at', 'kind', 'content', 'node', 'detail'] },
  { name: 'pool_meta', columns: ['key', 'value'] },
  { name: 'names', columns: ['name', 'owner', 'created_at', 'keep', 'lineage_key'] },
  { name: 'generations', columns: ['name', 'seq', 'content', 'created_at', 'size', 'added'] },
  { name: 'lineage_chunks', columns: ['name', 'tag', 'cid', 'size'] },
  { name: 'upload_sessions', columns: ['upload', 'name', 'owner', 'plan', 'uploaded', 'touched_at'] }
]

/** Rows per INSERT: well under PostgreSQL's 65,535 parameters for the widest table. */
const BATCH_ROWS = 1000

export interface CopyReport { tables: Record<string, number> }

/** Opens the SQLite catalog for the copy, or refuses: missing, or held by another process. */
function openSource (path: string): DatabaseSync {
  if (!existsSync(path)) throw new MigrateRefusedError(`no SQLite catalog at ${path}`)
  const db = new DatabaseSync(path, { enableForeignKeyConstraints: true })
  try {
    db.exec('PRAGMA busy_timeout = 0; PRAGMA locking_mode = EXCLUSIVE')
    // The exclusive lock is kept until close (locking_mode = EXCLUSIVE); it fails while a manager has the file open.
    db.exec('BEGIN EXCLUSIVE; COMMIT')
  } catch (err) {
    db.close()
    if (/locked|busy/i.test(String((err as Error).message))) {
      throw new MigrateRefusedError(`${path} is in use (another process, a running manager, has it open): stop the manager first`)
    }
    throw err
  }
  return db
}

/** Refuses a target that holds any table: migrating into a used database could mix two pools. */
async function checkEmpty (url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 })
  try {
    await client.connect()
  } catch (err) {
    throw new CatalogUnavailableError(`cannot reach the target PostgreSQL database: ${describeError(err)}`, { cause: err })
  }
  try {
    const r = await client.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema = current_schema()")
    const n = (r.rows[0] as { n: number }).n
    if (n > 0) throw new MigrateRefusedError(`the target database is not empty (${n} tables): migrate into a new, empty database`)
  } finally {
    await client.end()
  }
}

function insertText (table: string, columns: readonly string[], rows: number): string {
  const one = `(${columns.map(() => '?').join(', ')})`
  return `INSERT INTO ${table} (${columns.join(', ')}) VALUES ${Array(rows).fill(one).join(', ')}`
}

export async function copyCatalogToPostgres (from: string, toUrl: string, progress: (line: string) => void): Promise<CopyReport> {
  const source = openSource(from)
  try {
    if (source.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'contents'").get() == null) {
      throw new MigrateRefusedError(`${from} is not a manager's catalog (it has no contents table)`)
    }
    await checkEmpty(toUrl)
    // A pool made by an older manager is brought to this code's schema first, as a start would (or refused if newer).
    migrateSqlite(source)
    const target = await PgEngine.open(toUrl, { max: 1 })
    try {
      const tables: Record<string, number> = {}
      await target.transaction(async () => {
        for (const t of TABLES) tables[t.name] = await copyTable(source, target, t, progress)
        // Identity values continue after the copied ids.
        if (tables.events > 0) await target.exec("SELECT setval(pg_get_serial_sequence('events', 'id'), (SELECT max(id) FROM events))")
        // Sequences only grow: what the pool signed before the move stays older than what it signs after.
        for (const c of source.prepare('SELECT name, value FROM counters').all() as Array<{ name: string, value: number }>) {
          await target.prepare('UPDATE counters SET value = GREATEST(value, ?) WHERE name = ?').run(c.value, c.name)
        }
      })
      return { tables }
    } finally {
      await target.close()
    }
  } finally {
    source.close()
  }
}

async function copyTable (source: DatabaseSync, target: PgEngine, t: { name: string, columns: readonly string[] }, progress: (line: string) => void): Promise<number> {
  const total = Number((source.prepare(`SELECT count(*) AS n FROM ${t.name}`).get() as { n: number }).n)
  const select = source.prepare(`SELECT ${t.columns.join(', ')} FROM ${t.name} ORDER BY rowid`)
  let done = 0
  let batch: Param[] = []
  let rows = 0
  const flush = async (): Promise<void> => {
    if (rows === 0) return
    await target.prepare(insertText(t.name, t.columns, rows)).run(...batch)
    done += rows
    batch = []
    rows = 0
    progress(`${t.name}: ${done}/${total} rows`)
  }
  for (const row of select.iterate() as Iterable<Record<string, Param>>) {
    for (const c of t.columns) batch.push(row[c] ?? null)
    if (++rows === BATCH_ROWS) await flush()
  }
  await flush()
  if (total === 0) progress(`${t.name}: 0 rows`)
  const copied = Number((await target.prepare(`SELECT count(*) AS n FROM ${t.name}`).get() as { n: number }).n)
  if (copied !== total) throw new Error(`${t.name}: ${copied} rows arrived of ${total}`)
  return total
}
