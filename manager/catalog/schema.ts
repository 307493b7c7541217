/**
 * The catalog's tables, created idempotently on every open (SQLite dialect).
 */
import type { SqlEngine } from './engine.ts'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS contents (
  id TEXT PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('pending', 'visible')),
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  size INTEGER NOT NULL DEFAULT 0,
  chunk_size INTEGER NOT NULL,
  chunk_count INTEGER NOT NULL DEFAULT 0,
  replicas INTEGER NOT NULL,
  created_at TEXT NOT NULL,
  publisher TEXT NOT NULL,
  manifest BLOB
) STRICT;

CREATE TABLE IF NOT EXISTS chunks (
  content TEXT NOT NULL REFERENCES contents (id) ON UPDATE CASCADE ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  cid TEXT NOT NULL,
  size INTEGER NOT NULL,
  PRIMARY KEY (content, idx)
) STRICT;
CREATE INDEX IF NOT EXISTS chunks_by_cid ON chunks (cid);

CREATE TABLE IF NOT EXISTS nodes (
  peer_id TEXT PRIMARY KEY,
  http TEXT NOT NULL,
  zone TEXT,
  capacity INTEGER NOT NULL,
  used INTEGER NOT NULL DEFAULT 0,
  egress_cap REAL,
  egress_rate REAL NOT NULL DEFAULT 0,
  blobs INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL CHECK (state IN ('alive', 'dead', 'draining')),
  last_seen INTEGER NOT NULL,
  joined_at INTEGER NOT NULL,
  addrs TEXT NOT NULL DEFAULT '[]'
) STRICT;

CREATE TABLE IF NOT EXISTS copies (
  content TEXT NOT NULL REFERENCES contents (id) ON UPDATE CASCADE ON DELETE CASCADE,
  cid TEXT NOT NULL,
  node TEXT NOT NULL REFERENCES nodes (peer_id) ON DELETE CASCADE,
  state TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'suspect')),
  PRIMARY KEY (cid, node)
) STRICT;
CREATE INDEX IF NOT EXISTS copies_by_content ON copies (content);
CREATE INDEX IF NOT EXISTS copies_by_node ON copies (node);

CREATE TABLE IF NOT EXISTS removed_nodes (
  peer_id TEXT PRIMARY KEY,
  removed_at INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  kind TEXT NOT NULL,
  content TEXT,
  node TEXT,
  detail TEXT
) STRICT;
`

/**
 * What deletes and the copy rule need (added after the first release, so
 * created apart and idempotently on every open):
 * - `tombstones`: contents deleted (by a publisher or expiry), kept for good,
 *   so a deleted content is told apart from a publish in flight.
 * - `pending_deletes`: per content and node, the blobs a delete still has to
 *   remove there; written in the delete's own transaction, cleared as orders
 *   land, resumed after a restart.
 * - `counted_copies`: THE rule for which copies count toward the minimum:
 *   confirmed (not pending, not suspect) and on a node that is not dead.
 *   Every query that counts copies goes through it.
 */
const CONVERGENCE_SCHEMA = `
CREATE TABLE IF NOT EXISTS tombstones (
  id TEXT PRIMARY KEY,
  deleted_at INTEGER NOT NULL,
  reason TEXT NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS pending_deletes (
  content TEXT NOT NULL,
  node TEXT NOT NULL REFERENCES nodes (peer_id) ON DELETE CASCADE,
  blobs TEXT NOT NULL,
  PRIMARY KEY (content, node)
) STRICT;
CREATE INDEX IF NOT EXISTS pending_deletes_by_node ON pending_deletes (node);

CREATE VIEW IF NOT EXISTS counted_copies AS
  SELECT cp.content AS content, cp.cid AS cid, cp.node AS node
  FROM copies cp JOIN nodes nd ON nd.peer_id = cp.node AND nd.state != 'dead'
  WHERE cp.state = 'confirmed';
`

/**
 * Columns added after the first release: a catalog created before them gets
 * them on open, so an existing manager keeps its data across the upgrade.
 */
const ADDED_COLUMNS: Array<{ table: string, column: string, ddl: string }> = [
  { table: 'contents', column: 'expires_at', ddl: 'ALTER TABLE contents ADD COLUMN expires_at INTEGER' },
  { table: 'nodes', column: 'drain', ddl: 'ALTER TABLE nodes ADD COLUMN drain INTEGER NOT NULL DEFAULT 0' },
  { table: 'contents', column: 'private', ddl: 'ALTER TABLE contents ADD COLUMN private INTEGER NOT NULL DEFAULT 0' },
  { table: 'contents', column: 'owner', ddl: 'ALTER TABLE contents ADD COLUMN owner TEXT' }
]

function addMissingColumns (db: SqlEngine): void {
  for (const { table, column, ddl } of ADDED_COLUMNS) {
    const columns = db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>
    if (!columns.some(c => c.name === column)) db.exec(ddl)
  }
}


/** Creates what is missing: tables, the counted-copies rule, columns added since the first release. */
export function createSchema (db: SqlEngine): void {
  db.exec(SCHEMA)
  db.exec(CONVERGENCE_SCHEMA)
  addMissingColumns(db)
}
