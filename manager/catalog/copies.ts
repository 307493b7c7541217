/**
 * Copies: which node holds which blob of which content, and in what state.
 * Every count of copies goes through the `counted_copies` view (schema.ts),
 * the one statement of the rule: confirmed, on a node that is not dead.
 */
import type { SqlEngine } from './engine.ts'
import type { EventStore } from './events.ts'
import { Store } from './store.ts'
import { inBatches } from './in-batches.ts'
import { as, blobCopyRow, nodeRow, one, type BlobCopyColumns, type NodeColumns } from './rows.ts'
import type { BlobCopyRow, ChunkAtRisk, CopyRow, CopyState, CopySummary, NewEvent, NodeHoldings, NodeRow, ReplicationSummary } from './types.ts'

export class CopyStore extends Store<ReturnType<typeof prepare>> {
  constructor (db: SqlEngine, events: EventStore) {
    super(db, events, prepare(db))
  }

  /** Records that a copy was ordered; it counts only once confirmed. */
  async addCopy (content: string, cid: string, node: string, state: CopyState = 'pending'): Promise<void> {
    await this.s.upsertCopy.run(content, cid, node, state)
  }

  async confirmCopy (cid: string, node: string): Promise<void> {
    await this.s.setCopyState.run('confirmed', cid, node)
  }

  /** The blob leaves the node: its rows go for every content that counted it there. */
  async removeCopy (cid: string, node: string): Promise<void> {
    await this.s.deleteCopy.run(cid, node)
  }

  /** Only `content`'s row goes: the blob stays on the node for the other contents that hold it there. */
  async removeCopyFor (content: string, cid: string, node: string): Promise<void> {
    await this.s.deleteCopyFor.run(content, cid, node)
  }

  /** True when another content than `content` holds `cid` on `node` (a chunk shared by generations of a name). */
  async heldForOthers (content: string, cid: string, node: string): Promise<boolean> {
    return (await this.s.heldForOthers.get(cid, node, content)) != null
  }

  /** Marks a confirmed copy suspect; false when there was no such copy. */
  async markSuspect (cid: string, node: string): Promise<boolean> {
    return Number((await this.s.markSuspect.run(cid, node)).changes) > 0
  }

  /** A verified bad-copy report: the copy turns suspect (when `proven`) in the transaction that records `event`. */
  async judgeCopy (cid: string, node: string, proven: boolean, event: (marked: boolean) => NewEvent): Promise<boolean> {
    return this.db.transaction(async () => {
      const marked = proven && (await this.markSuspect(cid, node))
      await this.events.record(event(marked))
      return marked
    })
  }

  /** Every copy row of a content: its chunks and its manifest, in every state. */
  async copiesOf (content: string): Promise<CopyRow[]> {
    return as<CopyRow>(await this.s.copiesOf.all(content)).map(r => ({ content: r.content, cid: r.cid, node: r.node, state: r.state }))
  }

  /**
   * For each of `cids`, the nodes (not dead) holding a confirmed copy for
   * whichever content: what a later generation of a name may count as its own.
   */
  async countedHolders (cids: readonly string[]): Promise<Map<string, string[]>> {
    const rows = await inBatches(cids, async (batch, marks) => as<{ cid: string, node: string }>(await this.db.prepare(`SELECT DISTINCT cid, node FROM counted_copies WHERE cid IN (${marks})`).all(...batch)))
    const holders = new Map<string, string[]>()
    for (const r of rows) holders.set(r.cid, [...holders.get(r.cid) ?? [], r.node])
    return holders
  }

  /** Those of `cids` that a content other than `content` holds copies of (a generation's chunks it shares with others). */
  async sharedWithOthers (content: string, cids: readonly string[]): Promise<Set<string>> {
    const rows = await inBatches(cids, async (batch, marks) => as<{ cid: string }>(await this.db.prepare(`SELECT DISTINCT cid FROM copies WHERE content != ? AND cid IN (${marks})`).all(content, ...batch)))
    return new Set(rows.map(r => r.cid))
  }

  /**
   * The copies of a content that no other content holds on the same node:
   * what may leave the nodes when this content goes (a blob shared with
   * another content stays, and only this content's row goes).
   */
  async exclusiveCopiesOf (content: string): Promise<CopyRow[]> {
    return as<CopyRow>(await this.s.exclusiveCopiesOf.all(content, content)).map(r => ({ content: r.content, cid: r.cid, node: r.node, state: r.state }))
  }

  /** State of the copy of `cid` on `node`, for any content, the best first (confirmed, suspect, pending); undefined when none. */
  async copyState (cid: string, node: string): Promise<CopyState | undefined> {
    return one<{ state: CopyState }>(await this.s.copyState.get(cid, node))?.state
  }

  /** State of `content`'s own copy of `cid` on `node`, if it has one. */
  async copyStateFor (content: string, cid: string, node: string): Promise<CopyState | undefined> {
    return one<{ state: CopyState }>(await this.s.copyStateFor.get(content, cid, node))?.state
  }

  /** Nodes not dead, other than `except`, with a confirmed copy of `cid` (for whichever content): what would remain if that copy went. */
  async healthyCopiesExcept (cid: string, except: string): Promise<number> {
    return Number(one<{ n: number }>(await this.s.healthyExcept.get(cid, except))!.n)
  }

  /** True when `node` has a copy row (any state) of a chunk of `content`, the manifest not counted. */
  async nodeHoldsChunksOf (content: string, node: string): Promise<boolean> {
    return (await this.s.holdsChunksOf.get(content, content, node)) != null
  }

  /** Per visible content: fewest and most counted copies of a chunk, and the nodes holding counted copies. */
  async summaries (): Promise<Map<string, CopySummary>> {
    const out = new Map<string, CopySummary>()
    for (const r of as<{ content: string, min: number, max: number }>(await this.s.copyCounts.all())) out.set(r.content, { min: r.min, max: r.max, nodes: [] })
    for (const r of as<{ content: string, node: string }>(await this.s.visibleHolders.all())) {
      let summary = out.get(r.content)
      if (summary == null) out.set(r.content, summary = { min: 0, max: 0, nodes: [] })
      summary.nodes.push(r.node)
    }
    return out
  }

  /**
   * Every chunk of every visible content with each of its copy rows (one row
   * per copy, or one row with a null node for a chunk without copies), then
   * the copy rows of their manifests (cid = content id). Ordered by content,
   * chunk index and node, so what is built from it is deterministic.
   */
  async replicaCopies (): Promise<BlobCopyRow[]> {
    const chunks = as<BlobCopyColumns>(await this.s.replicaChunkCopies.all())
    const manifests = as<BlobCopyColumns>(await this.s.replicaManifestCopies.all())
    return [...chunks, ...manifests].map(blobCopyRow)
  }

  /** Copies of controller orders that never answered (a crash): nobody knows if they exist, so they become suspect. */
  async suspectPendingCopiesOfVisible (): Promise<number> {
    return Number((await this.s.suspectPendingVisible.run()).changes)
  }

  /** Copy rows and contents per node (any copy state, visible or not). */
  async holdingsByNode (): Promise<Map<string, NodeHoldings>> {
    const out = new Map<string, NodeHoldings>()
    for (const r of as<NodeHoldings & { node: string }>(await this.s.holdings.all())) out.set(r.node, { copies: r.copies, contents: r.contents })
    return out
  }

  /** The invariant as a number: copies of the chunks of visible contents that count. */
  async replicationSummary (minCopies: number): Promise<ReplicationSummary> {
    type Columns = { contents: number | null, chunks: number | null, lowest: number | null, below_min: number | null, below_base: number | null }
    const r = one<Columns>(await this.s.replicationSummary.get(minCopies))!
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
  async chunksAtRiskWithout (node: string, minCopies: number): Promise<ChunkAtRisk[]> {
    return as<ChunkAtRisk>(await this.s.atRisk.all(node, minCopies)).map(r => ({ content: r.content, cid: r.cid, others: r.others }))
  }

  /** Nodes that are not dead and hold a confirmed copy of any blob of the content. */
  async holdersOf (content: string): Promise<NodeRow[]> {
    return as<NodeColumns>(await this.s.holdersOf.all(content)).map(nodeRow)
  }
}

/**
 * Counted copies of each chunk of the visible contents (the heart of the
 * replication invariant). The counts per blob are aggregated once and joined
 * to the chunks: a LEFT JOIN on the view itself made SQLite materialise and
 * index the whole view on every call, and a count per chunk (a correlated
 * subquery) is a sub-plan per row on PostgreSQL; this shape is fast on both.
 */
const CHUNK_COUNTS = `SELECT ch.content AS content, ch.idx AS idx, c.replicas AS replicas, COALESCE(cc.n, 0) AS n
        FROM chunks ch
        JOIN contents c ON c.id = ch.content AND c.state = 'visible'
        LEFT JOIN (SELECT cid, COUNT(DISTINCT node) AS n FROM counted_copies GROUP BY cid) cc ON cc.cid = ch.cid`

function prepare (db: SqlEngine) {
  return {
    upsertCopy: db.prepare(`INSERT INTO copies (content, cid, node, state) VALUES (?, ?, ?, ?)
      ON CONFLICT (content, cid, node) DO UPDATE SET state = excluded.state`),
    setCopyState: db.prepare('UPDATE copies SET state = ? WHERE cid = ? AND node = ?'),
    deleteCopy: db.prepare('DELETE FROM copies WHERE cid = ? AND node = ?'),
    deleteCopyFor: db.prepare('DELETE FROM copies WHERE content = ? AND cid = ? AND node = ?'),
    heldForOthers: db.prepare('SELECT 1 FROM copies WHERE cid = ? AND node = ? AND content != ? LIMIT 1'),
    markSuspect: db.prepare("UPDATE copies SET state = 'suspect' WHERE cid = ? AND node = ? AND state = 'confirmed'"),
    copiesOf: db.prepare('SELECT content, cid, node, state FROM copies WHERE content = ?'),
    exclusiveCopiesOf: db.prepare(`SELECT cp.content, cp.cid, cp.node, cp.state FROM copies cp WHERE cp.content = ?
      AND NOT EXISTS (SELECT 1 FROM copies o WHERE o.cid = cp.cid AND o.node = cp.node AND o.content != ?)`),
    copyState: db.prepare(`SELECT state FROM copies WHERE cid = ? AND node = ?
      ORDER BY CASE state WHEN 'confirmed' THEN 0 WHEN 'suspect' THEN 1 ELSE 2 END LIMIT 1`),
    copyStateFor: db.prepare('SELECT state FROM copies WHERE content = ? AND cid = ? AND node = ?'),
    healthyExcept: db.prepare('SELECT COUNT(DISTINCT node) AS n FROM counted_copies WHERE cid = ? AND node != ?'),
    holdsChunksOf: db.prepare('SELECT 1 FROM copies WHERE content = ? AND cid != ? AND node = ? LIMIT 1'),
    copyCounts: db.prepare(`SELECT content, MIN(n) AS min, MAX(n) AS max FROM (${CHUNK_COUNTS}) counts GROUP BY content`),
    visibleHolders: db.prepare(`SELECT DISTINCT cc.content AS content, cc.node AS node
      FROM counted_copies cc
      JOIN contents c ON c.id = cc.content AND c.state = 'visible'
      ORDER BY cc.content, cc.node`),
    holdersOf: db.prepare(`SELECT * FROM nodes WHERE peer_id IN
      (SELECT node FROM counted_copies WHERE content = ?) ORDER BY peer_id`),
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
    holdings: db.prepare('SELECT node, COUNT(DISTINCT cid) AS copies, COUNT(DISTINCT content) AS contents FROM copies GROUP BY node'),
    replicationSummary: db.prepare(`SELECT COUNT(DISTINCT content) AS contents, COUNT(*) AS chunks, MIN(n) AS lowest,
        SUM(CASE WHEN n < ? THEN 1 ELSE 0 END) AS below_min, SUM(CASE WHEN n < replicas THEN 1 ELSE 0 END) AS below_base
      FROM (${CHUNK_COUNTS}) counts`),
    atRisk: db.prepare(`SELECT * FROM (
        SELECT cp.content AS content, cp.cid AS cid,
          (SELECT COUNT(DISTINCT o.node) FROM counted_copies o WHERE o.cid = cp.cid AND o.node != cp.node) AS others
        FROM copies cp
        JOIN contents c ON c.id = cp.content AND c.state = 'visible'
        WHERE cp.node = ? AND cp.state IN ('confirmed', 'suspect')
      ) at_risk WHERE others < ? ORDER BY others, content, cid`)
  }
}
