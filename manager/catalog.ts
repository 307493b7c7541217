/**
 * The catalog: what the pool holds and where. Contents and their chunks, the
 * copies of every blob on every node, the nodes themselves, and the event log.
 *
 * A content row is created when an upload starts, under a temporary upload id
 * and in state `pending`; it is renamed to its content id and turned `visible`
 * in one transaction once every chunk has its copies (chunks and copies follow
 * the rename through ON UPDATE CASCADE). Nothing pending is ever listed.
 */
import type { Db } from './db.ts'
import type { NodeState } from './placement.ts'

export type ContentState = 'pending' | 'visible'
/** `suspect`: a reader reported the copy bad; it no longer counts until repair looks at it. */
export type CopyState = 'pending' | 'confirmed' | 'suspect'

export interface ContentRow {
  id: string
  state: ContentState
  name: string
  type: string
  size: number
  chunkSize: number
  chunkCount: number
  replicas: number
  createdAt: string
  publisher: string
  manifest: Uint8Array | null
  /** ms since the epoch after which the content is deleted everywhere; null: kept until deleted */
  expiresAt: number | null
  /** resolvable only with a capability or a token that may read it */
  private: boolean
  /** id of the token that published it; null for contents published before owners were recorded */
  owner: string | null
}

export interface NewUpload {
  uploadId: string
  name: string
  type: string
  chunkSize: number
  replicas: number
  createdAt: string
  publisher: string
  /** id of the publishing token */
  owner?: string | null
  private?: boolean
}

export interface CopyRow {
  content: string
  cid: string
  node: string
  state: CopyState
}

export interface CopySummary {
  /** fewest copies of any chunk, counting confirmed copies on nodes that are not dead */
  min: number
  max: number
  nodes: string[]
}

export interface NodeRow {
  peerId: string
  http: string
  zone: string | null
  capacity: number
  used: number
  egressCap: number | null
  egressRate: number
  blobs: number
  state: NodeState
  /** an operator asked the node to drain: it stays draining across deaths and rejoins */
  drain: boolean
  /** ms since the epoch */
  lastSeen: number
  joinedAt: number
  /** the node's libp2p listen addresses, without /p2p/ */
  addrs: string[]
}

export interface NodeJoin {
  peerId: string
  http: string
  zone: string | null
  capacity: number
  egressCap: number | null
  addrs: string[]
}

export interface NodeFigures {
  http: string
  capacity: number
  used: number
  egressCap: number | null
  egressRate: number
  blobs: number
  addrs?: string[]
}

/** What the catalog says one node holds: copy rows in any state, and the contents they belong to. */
export interface NodeHoldings {
  copies: number
  contents: number
}

/** One copy row of a visible content's blob, with what the replication controller needs to know of it. */
export interface BlobCopyRow {
  content: string
  cid: string
  size: number
  /** null for a blob without any copy row */
  node: string | null
  state: CopyState | null
}

/** A visible content as the replication controller sees it. */
export interface ReplicaContent {
  id: string
  replicas: number
  expiresAt: number | null
  manifestSize: number
  chunkCount: number
}

/** Copies of the blobs of visible contents, counted the way the invariant is stated: confirmed, on nodes not dead. */
export interface ReplicationSummary {
  contents: number
  chunks: number
  /** fewest such copies of any chunk; null when there are no chunks */
  lowest: number | null
  /** chunks with fewer than the given minimum */
  belowMin: number
  /** chunks with fewer than their content's R */
  belowBase: number
}

/** A blob whose copy on a node is one of too few. */
export interface ChunkAtRisk {
  content: string
  cid: string
  /** copies on other nodes that count (confirmed, on nodes not dead) */
  others: number
}

export interface EventRow {
  id: number
  at: string
  kind: string
  content: string | null
  node: string | null
  detail: Record<string, unknown> | null
}

export interface NewEvent {
  kind: string
  content?: string | null
  node?: string | null
  detail?: Record<string, unknown>
}

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

function contentRow (r: any): ContentRow {
  return {
    id: r.id,
    state: r.state,
    name: r.name,
    type: r.type,
    size: r.size,
    chunkSize: r.chunk_size,
    chunkCount: r.chunk_count,
    replicas: r.replicas,
    createdAt: r.created_at,
    publisher: r.publisher,
    manifest: r.manifest ?? null,
    expiresAt: r.expires_at ?? null,
    private: r.private === 1,
    owner: r.owner ?? null
  }
}

function nodeRow (r: any): NodeRow {
  let addrs: string[] = []
  try {
    const parsed = JSON.parse(r.addrs)
    if (Array.isArray(parsed)) addrs = parsed.filter((a): a is string => typeof a === 'string')
  } catch {
    // A malformed column only costs the addresses, which the next heartbeat rewrites.
  }
  return {
    peerId: r.peer_id,
    http: r.http,
    zone: r.zone ?? null,
    capacity: r.capacity,
    used: r.used,
    egressCap: r.egress_cap ?? null,
    egressRate: r.egress_rate,
    blobs: r.blobs,
    state: r.state,
    drain: r.drain === 1,
    lastSeen: r.last_seen,
    joinedAt: r.joined_at,
    addrs
  }
}

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

/** A delete that still has blobs to remove on one node. */
export interface PendingDelete {
  content: string
  node: string
  blobs: string[]
}

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

function addMissingColumns (db: Db): void {
  for (const { table, column, ddl } of ADDED_COLUMNS) {
    const columns = db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>
    if (!columns.some(c => c.name === column)) db.exec(ddl)
  }
}

function parseIdList (text: string): string[] {
  try {
    const v = JSON.parse(text)
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
  } catch {
    return []
  }
}

/** Node figures arrive as JSON numbers; integer columns take them rounded. */
const int = (n: number): number => Math.max(0, Math.round(n))

export interface CatalogInit {
  /** called after an event row is written, e.g. to count events by kind */
  onEvent?: (kind: string) => void
}

export class Catalog {
  readonly db: Db
  private readonly onEvent?: (kind: string) => void
  private readonly s: ReturnType<typeof prepare>

  constructor (db: Db, init: CatalogInit = {}) {
    this.db = db
    this.onEvent = init.onEvent
    db.exec(SCHEMA)
    db.exec(CONVERGENCE_SCHEMA)
    addMissingColumns(db)
    this.s = prepare(db)
  }

  // ---- contents -------------------------------------------------------

  createUpload (u: NewUpload): void {
    this.s.insertUpload.run(u.uploadId, u.name, u.type, u.chunkSize, u.replicas, u.createdAt, u.publisher)
    // Set before any byte is stored, so a private content is never visible without its flag.
    if (u.owner != null || u.private === true) this.s.setAccess.run(u.owner ?? null, u.private === true ? 1 : 0, u.uploadId)
  }

  addChunk (content: string, index: number, cid: string, size: number): void {
    this.s.insertChunk.run(content, index, cid, size)
  }

  /** Records that a copy was ordered; it counts only once confirmed. */
  addCopy (content: string, cid: string, node: string, state: CopyState = 'pending'): void {
    this.s.upsertCopy.run(content, cid, node, state)
  }

  confirmCopy (cid: string, node: string): void {
    this.s.setCopyState.run('confirmed', cid, node)
  }

  removeCopy (cid: string, node: string): void {
    this.s.deleteCopy.run(cid, node)
  }

  /** Marks a confirmed copy suspect; false when there was no such copy. */
  markSuspect (cid: string, node: string): boolean {
    return Number(this.s.markSuspect.run(cid, node).changes) > 0
  }

  /**
   * Renames a finished upload to its content id and makes it visible. Call
   * inside the transaction that also stores the key and records the event.
   */
  makeVisible (uploadId: string, v: { contentId: string, size: number, chunkCount: number, manifest: Uint8Array, expiresAt?: number | null }): void {
    const r = this.s.makeVisible.run(v.contentId, v.size, v.chunkCount, v.manifest, v.expiresAt ?? null, uploadId)
    if (Number(r.changes) !== 1) throw new Error(`upload ${uploadId} is not pending`)
  }

  /** Removes a content (pending or visible) with its chunks and copies rows. */
  dropContent (id: string): boolean {
    return Number(this.s.deleteContent.run(id).changes) > 0
  }

  pendingUploads (): string[] {
    return this.s.pendingUploads.all().map((r: any) => r.id as string)
  }

  getContent (id: string): ContentRow | undefined {
    const r = this.s.getContent.get(id)
    return r == null ? undefined : contentRow(r)
  }

  getVisible (id: string): ContentRow | undefined {
    const c = this.getContent(id)
    return c?.state === 'visible' ? c : undefined
  }

  listVisible (): Array<ContentRow & { copies: CopySummary }> {
    const counts = new Map<string, { min: number, max: number }>()
    for (const r of this.s.copyCounts.all() as any[]) counts.set(r.content, { min: r.min, max: r.max })
    const holders = new Map<string, string[]>()
    for (const r of this.s.visibleHolders.all() as any[]) {
      const list = holders.get(r.content) ?? []
      list.push(r.node)
      holders.set(r.content, list)
    }
    return this.s.listVisible.all().map((r: any) => {
      const c = contentRow(r)
      const n = counts.get(c.id) ?? { min: 0, max: 0 }
      return { ...c, copies: { min: n.min, max: n.max, nodes: holders.get(c.id) ?? [] } }
    })
  }

  /** True when `cid` is one of the chunks of `content`. */
  hasChunk (content: string, cid: string): boolean {
    return this.s.hasChunk.get(content, cid) != null
  }

  /** Every copy row of a content: its chunks and its manifest, in every state. */
  copiesOf (content: string): CopyRow[] {
    return this.s.copiesOf.all(content).map((r: any) => ({ content: r.content, cid: r.cid, node: r.node, state: r.state }))
  }

  /** Bytes of a blob of a content: one of its chunks, or its manifest (cid = content id); 0 when unknown. */
  blobSize (content: string, cid: string): number {
    const r = (cid === content ? this.s.manifestSize.get(content) : this.s.chunkSize.get(content, cid)) as { size: number | null } | undefined
    return r?.size ?? 0
  }

  /** State of the copy of `cid` on `node`, if the catalog has one. */
  copyState (cid: string, node: string): CopyState | undefined {
    const r = this.s.copyState.get(cid, node) as { state: CopyState } | undefined
    return r?.state
  }

  /** Confirmed copies of `cid` on nodes that are not dead, other than `except`: what would remain if that copy went. */
  healthyCopiesExcept (cid: string, except: string): number {
    return Number((this.s.healthyExcept.get(cid, except) as { n: number }).n)
  }

  /** True when `node` has a copy row (any state) of a chunk of `content`, the manifest not counted. */
  nodeHoldsChunksOf (content: string, node: string): boolean {
    return this.s.holdsChunksOf.get(content, content, node) != null
  }

  /** Every visible content with what replication needs of it, oldest first. */
  replicaContents (): ReplicaContent[] {
    return this.s.replicaContents.all().map((r: any) => ({
      id: r.id,
      replicas: r.replicas,
      expiresAt: r.expires_at ?? null,
      manifestSize: r.manifest_size ?? 0,
      chunkCount: r.chunk_count
    }))
  }

  /**
   * Every chunk of every visible content with each of its copy rows (one row
   * per copy, or one row with a null node for a chunk without copies), then
   * the copy rows of their manifests (cid = content id). Ordered by content,
   * chunk index and node, so what is built from it is deterministic.
   */
  replicaCopies (): BlobCopyRow[] {
    const chunks = this.s.replicaChunkCopies.all() as any[]
    const manifests = this.s.replicaManifestCopies.all() as any[]
    return [...chunks, ...manifests].map(r => ({ content: r.content, cid: r.cid, size: r.size, node: r.node ?? null, state: r.state ?? null }))
  }

  /** Copies of controller orders that never answered (a crash): nobody knows if they exist, so they become suspect. */
  suspectPendingCopiesOfVisible (): number {
    return Number(this.s.suspectPendingVisible.run().changes)
  }

  /** Copy rows and contents per node (any copy state, visible or not). */
  holdingsByNode (): Map<string, NodeHoldings> {
    const out = new Map<string, NodeHoldings>()
    for (const r of this.s.holdings.all() as any[]) out.set(r.node, { copies: r.copies, contents: r.contents })
    return out
  }

  /** The invariant as a number: copies of the chunks of visible contents that count. */
  replicationSummary (minCopies: number): ReplicationSummary {
    const r = this.s.replicationSummary.get(minCopies) as any
    return {
      contents: r.contents ?? 0,
      chunks: r.chunks ?? 0,
      lowest: r.lowest ?? null,
      belowMin: r.below_min ?? 0,
      belowBase: r.below_base ?? 0
    }
  }

  /**
   * Blobs of visible contents of which `node` holds a copy (confirmed or
   * suspect: a suspect copy may still be the last bytes there are) while
   * fewer than `minCopies` copies that count exist elsewhere. A copy is spare
   * only when enough counted copies remain without it.
   */
  chunksAtRiskWithout (node: string, minCopies: number): ChunkAtRisk[] {
    return this.s.atRisk.all(node, minCopies).map((r: any) => ({ content: r.content, cid: r.cid, others: r.others }))
  }

  /** Nodes that are not dead and hold a confirmed copy of any blob of the content. */
  holdersOf (content: string): NodeRow[] {
    return this.s.holdersOf.all(content).map(nodeRow)
  }

  // ---- deletes that finish ---------------------------------------------

  /** Records that a content was deleted (publisher or expiry); kept for good. */
  addTombstone (id: string, reason: string, now: number): void {
    this.s.insertTombstone.run(id, now, reason)
  }

  isTombstoned (id: string): boolean {
    return this.s.isTombstoned.get(id) != null
  }

  /** Notes blobs a delete still has to remove on a node (replacing an earlier note for the pair). */
  addPendingDelete (content: string, node: string, blobs: string[]): void {
    this.s.upsertPendingDelete.run(content, node, JSON.stringify(blobs))
  }

  clearPendingDelete (content: string, node: string): void {
    this.s.deletePendingDelete.run(content, node)
  }

  /** Every delete still owed to a node, oldest content first. */
  pendingDeletes (): PendingDelete[] {
    return this.s.pendingDeletes.all().map((r: any) => ({ content: r.content, node: r.node, blobs: parseIdList(r.blobs) }))
  }

  /** Forgets the deletes owed to `node` for contents it no longer holds (its heartbeat's complete `held` list). */
  clearPendingDeletesNotHeld (node: string, held: readonly string[]): number {
    return Number(this.s.clearPendingNotHeld.run(node, JSON.stringify(held)).changes)
  }

  /**
   * Of the contents a node says it holds, those it must drop: not visible
   * (deleted, never published, or a failed publish) or past their expiry,
   * unless a publish is in flight for them (its manifest copies are recorded
   * under a pending upload before any node gets them).
   */
  contentsToDrop (held: readonly string[], now: number): string[] {
    if (held.length === 0) return []
    return this.s.contentsToDrop.all(JSON.stringify(held), now).map((r: any) => r.id as string)
  }

  /** True when an upload in progress has recorded copies of `id` (its manifest is on its way to nodes). */
  isPublishInFlight (id: string): boolean {
    return this.s.publishInFlight.get(id) != null
  }

  // ---- nodes ----------------------------------------------------------

  getNode (peerId: string): NodeRow | undefined {
    const r = this.s.getNode.get(peerId)
    return r == null ? undefined : nodeRow(r)
  }

  listNodes (): NodeRow[] {
    return this.s.listNodes.all().map(nodeRow)
  }

  /**
   * Records a join. A draining node stays draining (the operator asked it to
   * leave); any other state becomes alive. Returns the row as it was before.
   */
  joinNode (j: NodeJoin, now: number): NodeRow | undefined {
    return this.db.transaction(() => {
      const before = this.getNode(j.peerId)
      this.s.upsertJoin.run(j.peerId, j.http, j.zone, int(j.capacity), j.egressCap, now, now, JSON.stringify(j.addrs))
      return before
    })
  }

  /** Updates a known node's figures and last-seen time; a dead node is alive again. Returns the row as it was before, undefined when unknown. */
  heartbeatNode (peerId: string, f: NodeFigures, now: number): NodeRow | undefined {
    return this.db.transaction(() => {
      const before = this.getNode(peerId)
      if (before == null) return undefined
      const addrs = f.addrs != null && f.addrs.length > 0 ? JSON.stringify(f.addrs) : JSON.stringify(before.addrs)
      this.s.heartbeat.run(f.http, int(f.capacity), int(f.used), f.egressCap, f.egressRate, int(f.blobs), now, addrs, peerId)
      return before
    })
  }

  /** Replaces a known node's libp2p addresses; false when the node is unknown. */
  setNodeAddrs (peerId: string, addrs: string[]): boolean {
    return Number(this.s.setNodeAddrs.run(JSON.stringify(addrs), peerId).changes) > 0
  }

  setNodeState (peerId: string, state: NodeState): void {
    this.s.setNodeState.run(state, peerId)
  }

  /** Marks a node as asked to drain; a live node turns draining at once, a dead one when it comes back. */
  setDrain (peerId: string): boolean {
    return Number(this.s.setDrain.run(peerId).changes) > 0
  }

  /** Forgets a node with its copy rows and remembers that it was removed, so it cannot join again under this identity. */
  removeNode (peerId: string, now: number): boolean {
    return this.db.transaction(() => {
      const gone = Number(this.s.deleteNode.run(peerId).changes) > 0
      if (gone) this.s.insertRemoved.run(peerId, now)
      return gone
    })
  }

  isRemoved (peerId: string): boolean {
    return this.s.isRemoved.get(peerId) != null
  }

  /** Nodes not already dead whose last heartbeat is older than `cutoff` (ms since the epoch). */
  silentSince (cutoff: number): NodeRow[] {
    return this.s.silentSince.all(cutoff).map(nodeRow)
  }

  // ---- events ---------------------------------------------------------

  recordEvent (e: NewEvent, at = new Date()): void {
    this.s.insertEvent.run(at.toISOString(), e.kind, e.content ?? null, e.node ?? null, e.detail == null ? null : JSON.stringify(e.detail))
    this.onEvent?.(e.kind)
  }

  /** Newest first. */
  listEvents (limit: number): EventRow[] {
    return this.s.listEvents.all(limit).map((r: any) => {
      let detail: Record<string, unknown> | null = null
      if (r.detail != null) {
        try {
          detail = JSON.parse(r.detail)
        } catch {
          detail = { raw: r.detail }
        }
      }
      return { id: r.id, at: r.at, kind: r.kind, content: r.content ?? null, node: r.node ?? null, detail }
    })
  }
}

function prepare (db: Db) {
  return {
    insertUpload: db.prepare(`INSERT INTO contents (id, state, name, type, chunk_size, replicas, created_at, publisher)
      VALUES (?, 'pending', ?, ?, ?, ?, ?, ?)`),
    setAccess: db.prepare('UPDATE contents SET owner = ?, private = ? WHERE id = ?'),
    insertChunk: db.prepare('INSERT INTO chunks (content, idx, cid, size) VALUES (?, ?, ?, ?)'),
    upsertCopy: db.prepare(`INSERT INTO copies (content, cid, node, state) VALUES (?, ?, ?, ?)
      ON CONFLICT (cid, node) DO UPDATE SET state = excluded.state`),
    setCopyState: db.prepare('UPDATE copies SET state = ? WHERE cid = ? AND node = ?'),
    deleteCopy: db.prepare('DELETE FROM copies WHERE cid = ? AND node = ?'),
    markSuspect: db.prepare("UPDATE copies SET state = 'suspect' WHERE cid = ? AND node = ? AND state = 'confirmed'"),
    makeVisible: db.prepare(`UPDATE contents SET id = ?, state = 'visible', size = ?, chunk_count = ?, manifest = ?, expires_at = ?
      WHERE id = ? AND state = 'pending'`),
    deleteContent: db.prepare('DELETE FROM contents WHERE id = ?'),
    pendingUploads: db.prepare("SELECT id FROM contents WHERE state = 'pending'"),
    getContent: db.prepare('SELECT * FROM contents WHERE id = ?'),
    listVisible: db.prepare("SELECT * FROM contents WHERE state = 'visible' ORDER BY created_at DESC, id"),
    copyCounts: db.prepare(`SELECT content, MIN(n) AS min, MAX(n) AS max FROM (
        SELECT ch.content AS content, ch.idx AS idx, COUNT(cc.node) AS n
        FROM chunks ch
        JOIN contents c ON c.id = ch.content AND c.state = 'visible'
        LEFT JOIN counted_copies cc ON cc.cid = ch.cid
        GROUP BY ch.content, ch.idx
      ) GROUP BY content`),
    visibleHolders: db.prepare(`SELECT DISTINCT cc.content AS content, cc.node AS node
      FROM counted_copies cc
      JOIN contents c ON c.id = cc.content AND c.state = 'visible'
      ORDER BY cc.content, cc.node`),
    hasChunk: db.prepare('SELECT 1 FROM chunks WHERE content = ? AND cid = ?'),
    copiesOf: db.prepare('SELECT content, cid, node, state FROM copies WHERE content = ?'),
    holdersOf: db.prepare(`SELECT * FROM nodes WHERE peer_id IN
      (SELECT node FROM counted_copies WHERE content = ?) ORDER BY peer_id`),
    getNode: db.prepare('SELECT * FROM nodes WHERE peer_id = ?'),
    listNodes: db.prepare('SELECT * FROM nodes ORDER BY joined_at, peer_id'),
    upsertJoin: db.prepare(`INSERT INTO nodes (peer_id, http, zone, capacity, egress_cap, state, last_seen, joined_at, addrs)
      VALUES (?, ?, ?, ?, ?, 'alive', ?, ?, ?)
      ON CONFLICT (peer_id) DO UPDATE SET http = excluded.http, zone = excluded.zone, capacity = excluded.capacity,
        egress_cap = excluded.egress_cap, last_seen = excluded.last_seen, addrs = excluded.addrs,
        state = CASE WHEN nodes.drain = 1 OR nodes.state = 'draining' THEN 'draining' ELSE 'alive' END`),
    heartbeat: db.prepare(`UPDATE nodes SET http = ?, capacity = ?, used = ?, egress_cap = ?, egress_rate = ?, blobs = ?,
      last_seen = ?, addrs = ?, state = CASE WHEN state != 'dead' THEN state WHEN drain = 1 THEN 'draining' ELSE 'alive' END WHERE peer_id = ?`),
    setNodeAddrs: db.prepare('UPDATE nodes SET addrs = ? WHERE peer_id = ?'),
    setNodeState: db.prepare('UPDATE nodes SET state = ? WHERE peer_id = ?'),
    setDrain: db.prepare("UPDATE nodes SET drain = 1, state = CASE WHEN state = 'dead' THEN 'dead' ELSE 'draining' END WHERE peer_id = ?"),
    deleteNode: db.prepare('DELETE FROM nodes WHERE peer_id = ?'),
    insertRemoved: db.prepare('INSERT INTO removed_nodes (peer_id, removed_at) VALUES (?, ?) ON CONFLICT (peer_id) DO UPDATE SET removed_at = excluded.removed_at'),
    isRemoved: db.prepare('SELECT 1 FROM removed_nodes WHERE peer_id = ?'),
    copyState: db.prepare('SELECT state FROM copies WHERE cid = ? AND node = ?'),
    chunkSize: db.prepare('SELECT size FROM chunks WHERE content = ? AND cid = ?'),
    manifestSize: db.prepare('SELECT length(manifest) AS size FROM contents WHERE id = ?'),
    healthyExcept: db.prepare('SELECT COUNT(*) AS n FROM counted_copies WHERE cid = ? AND node != ?'),
    holdsChunksOf: db.prepare('SELECT 1 FROM copies WHERE content = ? AND cid != ? AND node = ? LIMIT 1'),
    replicaContents: db.prepare(`SELECT id, replicas, expires_at, length(manifest) AS manifest_size, chunk_count FROM contents
      WHERE state = 'visible' ORDER BY created_at, id`),
    replicaChunkCopies: db.prepare(`SELECT ch.content AS content, ch.cid AS cid, ch.size AS size, cp.node AS node, cp.state AS state
      FROM chunks ch
      JOIN contents c ON c.id = ch.content AND c.state = 'visible'
      LEFT JOIN copies cp ON cp.cid = ch.cid AND cp.content = ch.content
      ORDER BY c.created_at, ch.content, ch.idx, cp.node`),
    replicaManifestCopies: db.prepare(`SELECT c.id AS content, c.id AS cid, length(c.manifest) AS size, cp.node AS node, cp.state AS state
      FROM contents c
      JOIN copies cp ON cp.content = c.id AND cp.cid = c.id
      WHERE c.state = 'visible'
      ORDER BY c.created_at, c.id, cp.node`),
    suspectPendingVisible: db.prepare(`UPDATE copies SET state = 'suspect' WHERE state = 'pending'
      AND content IN (SELECT id FROM contents WHERE state = 'visible')`),
    holdings: db.prepare('SELECT node, COUNT(*) AS copies, COUNT(DISTINCT content) AS contents FROM copies GROUP BY node'),
    replicationSummary: db.prepare(`SELECT COUNT(DISTINCT content) AS contents, COUNT(*) AS chunks, MIN(n) AS lowest,
        SUM(CASE WHEN n < ? THEN 1 ELSE 0 END) AS below_min, SUM(CASE WHEN n < replicas THEN 1 ELSE 0 END) AS below_base
      FROM (
        SELECT ch.content AS content, ch.idx AS idx, c.replicas AS replicas, COUNT(cc.node) AS n
        FROM chunks ch
        JOIN contents c ON c.id = ch.content AND c.state = 'visible'
        LEFT JOIN counted_copies cc ON cc.cid = ch.cid
        GROUP BY ch.content, ch.idx
      )`),
    atRisk: db.prepare(`SELECT * FROM (
        SELECT cp.content AS content, cp.cid AS cid,
          (SELECT COUNT(*) FROM counted_copies o WHERE o.cid = cp.cid AND o.node != cp.node) AS others
        FROM copies cp
        JOIN contents c ON c.id = cp.content AND c.state = 'visible'
        WHERE cp.node = ? AND cp.state IN ('confirmed', 'suspect')
      ) WHERE others < ? ORDER BY others, content, cid`),
    silentSince: db.prepare("SELECT * FROM nodes WHERE state != 'dead' AND last_seen < ?"),
    insertTombstone: db.prepare('INSERT INTO tombstones (id, deleted_at, reason) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING'),
    isTombstoned: db.prepare('SELECT 1 FROM tombstones WHERE id = ?'),
    upsertPendingDelete: db.prepare(`INSERT INTO pending_deletes (content, node, blobs) VALUES (?, ?, ?)
      ON CONFLICT (content, node) DO UPDATE SET blobs = excluded.blobs`),
    deletePendingDelete: db.prepare('DELETE FROM pending_deletes WHERE content = ? AND node = ?'),
    pendingDeletes: db.prepare(`SELECT pd.content AS content, pd.node AS node, pd.blobs AS blobs FROM pending_deletes pd
      LEFT JOIN tombstones t ON t.id = pd.content ORDER BY t.deleted_at, pd.content, pd.node`),
    clearPendingNotHeld: db.prepare('DELETE FROM pending_deletes WHERE node = ? AND content NOT IN (SELECT value FROM json_each(?))'),
    contentsToDrop: db.prepare(`SELECT DISTINCT h.value AS id FROM json_each(?1) h
      WHERE NOT EXISTS (SELECT 1 FROM contents c WHERE c.id = h.value AND c.state = 'visible'
          AND (c.expires_at IS NULL OR c.expires_at > ?2))
        AND NOT EXISTS (SELECT 1 FROM copies cp JOIN contents u ON u.id = cp.content AND u.state = 'pending'
          WHERE cp.cid = h.value)`),
    publishInFlight: db.prepare(`SELECT 1 FROM copies cp JOIN contents u ON u.id = cp.content AND u.state = 'pending'
      WHERE cp.cid = ? LIMIT 1`),
    insertEvent: db.prepare('INSERT INTO events (at, kind, content, node, detail) VALUES (?, ?, ?, ?, ?)'),
    listEvents: db.prepare('SELECT * FROM events ORDER BY id DESC LIMIT ?')
  }
}
