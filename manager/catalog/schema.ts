/**
 * The catalog's tables at schema version 1 (migrations.ts), in each engine's
 * dialect: SQLite's as it always was (created idempotently, so a catalog
 * from before versioning upgrades in place), PostgreSQL's the same tables
 * with its types (BIGINT for SQLite's 64-bit INTEGER, BYTEA for BLOB, an
 * identity column for AUTOINCREMENT) and the "C" collation, so text sorts
 * byte-wise as in SQLite.
 */
import type { DatabaseSync } from 'node:sqlite'

const SQLITE_TABLES = `
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
const SQLITE_CONVERGENCE = `
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

const SQLITE_KEYS_AND_TOKENS = `
CREATE TABLE IF NOT EXISTS content_keys (
  content TEXT PRIMARY KEY,
  key BLOB NOT NULL,
  stored_at TEXT NOT NULL
) STRICT;
`

const SQLITE_TOKENS = `
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY,
  hash BLOB NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('admin', 'publisher', 'reader', 'join')),
  name TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER
) STRICT;
`

export const SQLITE_V1 = SQLITE_TABLES + SQLITE_CONVERGENCE + SQLITE_KEYS_AND_TOKENS

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

/** What a SQLite catalog from before versioning may lack: columns added since the first release, the second tokens table. */
export function upgradeSqliteBaseline (db: DatabaseSync): void {
  for (const { table, column, ddl } of ADDED_COLUMNS) {
    const columns = db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>
    if (!columns.some(c => c.name === column)) db.exec(ddl)
  }
  upgradeFirstTokensTable(db)
  db.exec(SQLITE_TOKENS)
}

/**
 * The first tokens table had `hash` (primary key), `kind` ('publisher' |
 * 'join') and `label`. Its rows are carried over with their role and label,
 * a fresh id (the shape tokens.ts gives new ones) and the upgrade time as
 * creation time; contents they published (recorded under the label
 * `publisher-<first 8 hex of the hash>`) get them as owner.
 */
function upgradeFirstTokensTable (db: DatabaseSync): void {
  const columns = db.prepare('PRAGMA table_info(tokens)').all() as Array<{ name: string }>
  if (columns.length === 0 || columns.some(c => c.name === 'role')) return
  db.exec('ALTER TABLE tokens RENAME TO tokens_v1')
  db.exec(SQLITE_TOKENS)
  db.prepare(`INSERT INTO tokens (id, hash, role, name, created_at)
    SELECT lower(hex(randomblob(6))), hash, kind, label, ? FROM tokens_v1`).run(Date.now())
  db.exec(`UPDATE contents SET owner = (SELECT t.id FROM tokens t WHERE t.role = 'publisher'
    AND contents.publisher = 'publisher-' || lower(hex(substr(t.hash, 1, 4)))) WHERE owner IS NULL`)
  db.exec('DROP TABLE tokens_v1')
}

export const POSTGRES_V1 = `
CREATE TABLE contents (
  id TEXT COLLATE "C" PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('pending', 'visible')),
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  size BIGINT NOT NULL DEFAULT 0,
  chunk_size BIGINT NOT NULL,
  chunk_count BIGINT NOT NULL DEFAULT 0,
  replicas INTEGER NOT NULL,
  created_at TEXT COLLATE "C" NOT NULL,
  publisher TEXT NOT NULL,
  manifest BYTEA,
  expires_at BIGINT,
  private INTEGER NOT NULL DEFAULT 0,
  owner TEXT COLLATE "C"
);

CREATE TABLE chunks (
  content TEXT COLLATE "C" NOT NULL REFERENCES contents (id) ON UPDATE CASCADE ON DELETE CASCADE,
  idx BIGINT NOT NULL,
  cid TEXT COLLATE "C" NOT NULL,
  size BIGINT NOT NULL,
  PRIMARY KEY (content, idx)
);
CREATE INDEX chunks_by_cid ON chunks (cid);

CREATE TABLE nodes (
  peer_id TEXT COLLATE "C" PRIMARY KEY,
  http TEXT NOT NULL,
  zone TEXT COLLATE "C",
  capacity BIGINT NOT NULL,
  used BIGINT NOT NULL DEFAULT 0,
  egress_cap DOUBLE PRECISION,
  egress_rate DOUBLE PRECISION NOT NULL DEFAULT 0,
  blobs BIGINT NOT NULL DEFAULT 0,
  state TEXT NOT NULL CHECK (state IN ('alive', 'dead', 'draining')),
  last_seen BIGINT NOT NULL,
  joined_at BIGINT NOT NULL,
  addrs TEXT NOT NULL DEFAULT '[]',
  drain INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE copies (
  content TEXT COLLATE "C" NOT NULL REFERENCES contents (id) ON UPDATE CASCADE ON DELETE CASCADE,
  cid TEXT COLLATE "C" NOT NULL,
  node TEXT COLLATE "C" NOT NULL REFERENCES nodes (peer_id) ON DELETE CASCADE,
  state TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'suspect')),
  PRIMARY KEY (cid, node)
);
CREATE INDEX copies_by_content ON copies (content);
CREATE INDEX copies_by_node ON copies (node);

CREATE TABLE removed_nodes (
  peer_id TEXT COLLATE "C" PRIMARY KEY,
  removed_at BIGINT NOT NULL
);

CREATE TABLE events (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  at TEXT NOT NULL,
  kind TEXT NOT NULL,
  content TEXT,
  node TEXT,
  detail TEXT
);

CREATE TABLE tombstones (
  id TEXT COLLATE "C" PRIMARY KEY,
  deleted_at BIGINT NOT NULL,
  reason TEXT NOT NULL
);

CREATE TABLE pending_deletes (
  content TEXT COLLATE "C" NOT NULL,
  node TEXT COLLATE "C" NOT NULL REFERENCES nodes (peer_id) ON DELETE CASCADE,
  blobs TEXT NOT NULL,
  PRIMARY KEY (content, node)
);
CREATE INDEX pending_deletes_by_node ON pending_deletes (node);

CREATE VIEW counted_copies AS
  SELECT cp.content AS content, cp.cid AS cid, cp.node AS node
  FROM copies cp JOIN nodes nd ON nd.peer_id = cp.node AND nd.state != 'dead'
  WHERE cp.state = 'confirmed';

CREATE TABLE content_keys (
  content TEXT COLLATE "C" PRIMARY KEY,
  key BYTEA NOT NULL,
  stored_at TEXT NOT NULL
);

CREATE TABLE tokens (
  id TEXT COLLATE "C" PRIMARY KEY,
  hash BYTEA NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('admin', 'publisher', 'reader', 'join')),
  name TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  expires_at BIGINT,
  revoked_at BIGINT
);
`

/**
 * Version 2: several managers on one catalog.
 * - `pool_meta`: facts about the pool itself (`pool_id`, the peer id of the
 *   pool identity every manager signs with), so a manager given another
 *   pool's key is refused.
 * - `counters`: sequences every manager draws from (`signed_seq` orders the
 *   records they sign: node lists, manager lists), so they grow across managers.
 *   It starts at the time of the migration in ms, above any sequence a single
 *   manager issued before (those were its clock in ms).
 * - `managers`: who manages the pool, each row refreshed by its manager, so
 *   the live ones can be listed to nodes and a dead one's uploads collected.
 * - `leases`: a duty held by one manager at a time (`controller`) until
 *   `expires_at` (the database's clock, so managers' clocks need not agree);
 *   `epoch` grows with every new holder and fences what an old one writes.
 * - `contents.manager`: the manager an upload is bound to (pending rows).
 * - `nodes.demand`: the node's smoothed demand, so whichever manager runs
 *   the controller sees the demand nodes reported to the others.
 */
const V2_TABLES = (big: string, text: string, strict: string): string => `
CREATE TABLE pool_meta (
  key ${text} PRIMARY KEY,
  value TEXT NOT NULL
)${strict};

CREATE TABLE counters (
  name ${text} PRIMARY KEY,
  value ${big} NOT NULL
)${strict};

CREATE TABLE managers (
  peer_id ${text} PRIMARY KEY,
  http TEXT NOT NULL,
  multiaddrs TEXT NOT NULL,
  started_at ${big} NOT NULL,
  seen_at ${big} NOT NULL
)${strict};

CREATE TABLE leases (
  name ${text} PRIMARY KEY,
  holder TEXT NOT NULL,
  epoch ${big} NOT NULL,
  expires_at ${big} NOT NULL
)${strict};

ALTER TABLE contents ADD COLUMN manager TEXT;
ALTER TABLE nodes ADD COLUMN demand TEXT;
`

export const SQLITE_V2 = V2_TABLES('INTEGER', 'TEXT', ' STRICT')
export const POSTGRES_V2 = V2_TABLES('BIGINT', 'TEXT COLLATE "C"', '')
/** Seeds `signed_seq` above the clock-based sequences of older managers. */
export const SEED_COUNTERS = 'INSERT INTO counters (name, value) VALUES (\'signed_seq\', ?)'

/**
 * Version 3: names and their generations.
 * - `names`: a stable name of the pool, owned by the token that first
 *   published under it; `keep` (null: all) is how many generations it keeps.
 * - `generations`: each publish under a name, numbered from 1 without gaps
 *   reused (`seq`); a row stays when its content is deleted by hand, so the
 *   sequence never goes back, and goes when `keep` prunes it.
 */
const V3_TABLES = (big: string, text: string, strict: string): string => `
CREATE TABLE names (
  name ${text} PRIMARY KEY,
  owner ${text} NOT NULL,
  created_at ${big} NOT NULL,
  keep ${big}
)${strict};

CREATE TABLE generations (
  name ${text} NOT NULL REFERENCES names (name) ON DELETE CASCADE,
  seq ${big} NOT NULL,
  content ${text} NOT NULL,
  created_at ${big} NOT NULL,
  size ${big} NOT NULL,
  PRIMARY KEY (name, seq)
)${strict};
CREATE INDEX generations_by_content ON generations (content);
`

export const SQLITE_V3 = V3_TABLES('INTEGER', 'TEXT', ' STRICT')
export const POSTGRES_V3 = V3_TABLES('BIGINT', 'TEXT COLLATE "C"', '')

/**
 * Version 4: a blob may belong to several contents. A copy row now says
 * "this node holds this blob for this content", keyed by all three, so two
 * generations of a name that share a chunk each count the same physical
 * copy. What counts toward the minimum is still one copy per node and blob
 * (counted per distinct node), and a delete removes a blob from a node only
 * when no other content holds it there.
 */
const COUNTED_COPIES = `CREATE VIEW counted_copies AS
  SELECT cp.content AS content, cp.cid AS cid, cp.node AS node
  FROM copies cp JOIN nodes nd ON nd.peer_id = cp.node AND nd.state != 'dead'
  WHERE cp.state = 'confirmed';`

export const SQLITE_V4 = `
DROP VIEW counted_copies;
CREATE TABLE copies_by_content_key (
  content TEXT NOT NULL REFERENCES contents (id) ON UPDATE CASCADE ON DELETE CASCADE,
  cid TEXT NOT NULL,
  node TEXT NOT NULL REFERENCES nodes (peer_id) ON DELETE CASCADE,
  state TEXT NOT NULL CHECK (state IN ('pending', 'confirmed', 'suspect')),
  PRIMARY KEY (content, cid, node)
) STRICT;
INSERT INTO copies_by_content_key (content, cid, node, state) SELECT content, cid, node, state FROM copies;
DROP TABLE copies;
ALTER TABLE copies_by_content_key RENAME TO copies;
CREATE INDEX copies_by_node ON copies (node);
CREATE INDEX copies_by_blob ON copies (cid, node);
${COUNTED_COPIES}
`

export const POSTGRES_V4 = `
ALTER TABLE copies DROP CONSTRAINT copies_pkey;
ALTER TABLE copies ADD PRIMARY KEY (content, cid, node);
CREATE INDEX copies_by_blob ON copies (cid, node);
`

/**
 * Version 5: deduplication within a name, and upload sessions.
 * - `names.lineage_key`: the name's lineage key (core/chunk-keys.ts), sealed
 *   under the master key with `name:<name>` as associated data.
 * - `lineage_chunks`: the chunks a name has stored, by tag (an HMAC of the
 *   plaintext hash under the lineage key, never the hash itself), with the
 *   blob they became. A row whose blob has lost its copies is stale, not
 *   wrong: a lookup counts the copies anyway.
 * - `upload_sessions`: a differential upload in progress (its pending
 *   content row is `upload`): the plan of chunks, the token that opened it
 *   and when it was last used. A session outlives its client and the manager
 *   that opened it, so an interrupted upload resumes.
 * - `generations.added`: the bytes a generation sent that the name did not
 *   already hold (null: a generation from before; its size).
 */
const V5_TABLES = (big: string, text: string, blob: string, strict: string): string => `
ALTER TABLE names ADD COLUMN lineage_key ${blob};
ALTER TABLE generations ADD COLUMN added ${big};

CREATE TABLE lineage_chunks (
  name ${text} NOT NULL REFERENCES names (name) ON DELETE CASCADE,
  tag ${text} NOT NULL,
  cid ${text} NOT NULL,
  size ${big} NOT NULL,
  PRIMARY KEY (name, tag)
)${strict};

CREATE TABLE upload_sessions (
  upload ${text} PRIMARY KEY REFERENCES contents (id) ON UPDATE CASCADE ON DELETE CASCADE,
  name ${text} NOT NULL REFERENCES names (name) ON DELETE CASCADE,
  owner ${text} NOT NULL,
  plan TEXT NOT NULL,
  uploaded ${big} NOT NULL DEFAULT 0,
  touched_at ${big} NOT NULL
)${strict};
CREATE INDEX upload_sessions_by_name ON upload_sessions (name, owner);
`

export const SQLITE_V5 = V5_TABLES('INTEGER', 'TEXT', 'BLOB', ' STRICT')
export const POSTGRES_V5 = V5_TABLES('BIGINT', 'TEXT COLLATE "C"', 'BYTEA', '')
