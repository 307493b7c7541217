/**
 * Contents and their chunks. A content row is created when an upload starts,
 * under a temporary upload id and in state `pending`; it is renamed to its
 * content id and turned `visible` in one transaction once every chunk has its
 * copies (chunks and copies follow the rename through ON UPDATE CASCADE).
 * Nothing pending is ever listed.
 */
import type { SqlEngine } from './engine.ts'
import type { EventStore } from './events.ts'
import { Store } from './store.ts'
import { as, contentRow, one, type ContentColumns } from './rows.ts'
import type { ContentRow, CopySummary, NewUpload, ReplicaContent } from './types.ts'

export interface Visible {
  contentId: string
  size: number
  chunkCount: number
  manifest: Uint8Array
  expiresAt?: number | null
}

export class ContentStore extends Store<ReturnType<typeof prepare>> {
  constructor (db: SqlEngine, events: EventStore) {
    super(db, events, prepare(db))
  }

  async createUpload (u: NewUpload): Promise<void> {
    await this.db.transaction(async () => {
      await this.s.insertUpload.run(u.uploadId, u.name, u.type, u.chunkSize, u.replicas, u.createdAt, u.publisher, u.manager ?? null)
      // Set before any byte is stored, so a private content is never visible without its flag.
      if (u.owner != null || u.private === true) await this.s.setAccess.run(u.owner ?? null, u.private === true ? 1 : 0, u.uploadId)
    })
  }

  async addChunk (content: string, index: number, cid: string, size: number): Promise<void> {
    await this.s.insertChunk.run(content, index, cid, size)
  }

  /**
   * Renames a finished upload to its content id and makes it visible. Call
   * inside the transaction that also stores the key and records the event.
   */
  async makeVisible (uploadId: string, v: Visible): Promise<void> {
    const r = await this.s.makeVisible.run(v.contentId, v.size, v.chunkCount, v.manifest, v.expiresAt ?? null, uploadId)
    if (Number(r.changes) !== 1) throw new Error(`upload ${uploadId} is not pending`)
  }

  /** Removes a content (pending or visible) with its chunks and copies rows. */
  async dropContent (id: string): Promise<boolean> {
    return (await this.s.deleteContent.run(id)).changes > 0
  }

  /** Drops a failed upload's rows and records why, in one transaction. */
  async dropFailedUpload (uploadId: string, detail: Record<string, unknown>): Promise<void> {
    await this.db.transaction(async () => {
      await this.dropContent(uploadId)
      await this.events.record({ kind: 'publish-failed', detail: { upload: uploadId, ...detail } })
    })
  }

  /**
   * Uploads left pending: every one, or those bound to `manager` (its own,
   * after a restart) and those of no manager (from before uploads were bound).
   */
  async pendingUploads (manager?: string): Promise<string[]> {
    const rows = manager == null ? await this.s.pendingUploads.all() : await this.s.pendingUploadsOf.all(manager)
    return as<{ id: string }>(rows).map(r => r.id)
  }

  /** Uploads pending on another manager that has not been seen for `silentMs` (database clock): it died with them. */
  async orphanedUploads (self: string, silentMs: number): Promise<string[]> {
    return as<{ id: string }>(await this.s.orphanedUploads.all(self, silentMs)).map(r => r.id)
  }

  async getContent (id: string): Promise<ContentRow | undefined> {
    const r = one<ContentColumns>(await this.s.getContent.get(id))
    return r == null ? undefined : contentRow(r)
  }

  async getVisible (id: string): Promise<ContentRow | undefined> {
    const c = await this.getContent(id)
    return c?.state === 'visible' ? c : undefined
  }

  /** Visible contents, newest first, each with its copy summary from `copies` (absent: none). */
  async visibleWith (copies: Map<string, CopySummary>): Promise<Array<ContentRow & { copies: CopySummary }>> {
    return as<ContentColumns>(await this.s.listVisible.all()).map(r => {
      const c = contentRow(r)
      return { ...c, copies: copies.get(c.id) ?? { min: 0, max: 0, nodes: [] } }
    })
  }

  /** True when `cid` is one of the chunks of `content`. */
  async hasChunk (content: string, cid: string): Promise<boolean> {
    return (await this.s.hasChunk.get(content, cid)) != null
  }

  /** Bytes of a blob of a content: one of its chunks, or its manifest (cid = content id); 0 when unknown. */
  async blobSize (content: string, cid: string): Promise<number> {
    const r = one<{ size: number | null }>(await (cid === content ? this.s.manifestSize.get(content) : this.s.chunkSize.get(content, cid)))
    return r?.size ?? 0
  }

  /** Every visible content with what replication needs of it, oldest first. */
  async replicaContents (): Promise<ReplicaContent[]> {
    type Columns = { id: string, replicas: number, expires_at: number | null, manifest_size: number | null, chunk_count: number }
    return as<Columns>(await this.s.replicaContents.all()).map(r => ({
      id: r.id,
      replicas: r.replicas,
      expiresAt: r.expires_at ?? null,
      manifestSize: r.manifest_size ?? 0,
      chunkCount: r.chunk_count
    }))
  }

  /**
   * Of the contents a node says it holds, those it must drop: not visible
   * (deleted, never published, or a failed publish) or past their expiry,
   * unless a publish is in flight for them (its manifest copies are recorded
   * under a pending upload before any node gets them).
   */
  async contentsToDrop (held: readonly string[], now: number): Promise<string[]> {
    if (held.length === 0) return []
    return as<{ id: string }>(await this.s.contentsToDrop.all(JSON.stringify(held), now)).map(r => r.id)
  }

  /** True when an upload in progress has recorded copies of `id` (its manifest is on its way to nodes). */
  async isPublishInFlight (id: string): Promise<boolean> {
    return (await this.s.publishInFlight.get(id)) != null
  }
}

function prepare (db: SqlEngine) {
  return {
    insertUpload: db.prepare(`INSERT INTO contents (id, state, name, type, chunk_size, replicas, created_at, publisher, manager)
      VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?)`),
    setAccess: db.prepare('UPDATE contents SET owner = ?, private = ? WHERE id = ?'),
    insertChunk: db.prepare('INSERT INTO chunks (content, idx, cid, size) VALUES (?, ?, ?, ?)'),
    makeVisible: db.prepare(`UPDATE contents SET id = ?, state = 'visible', size = ?, chunk_count = ?, manifest = ?, expires_at = ?
      WHERE id = ? AND state = 'pending'`),
    deleteContent: db.prepare('DELETE FROM contents WHERE id = ?'),
    // An upload session outlives its manager (it resumes); only its idleness ends it (expiredSessions).
    pendingUploads: db.prepare("SELECT id FROM contents WHERE state = 'pending' AND id NOT IN (SELECT upload FROM upload_sessions)"),
    pendingUploadsOf: db.prepare("SELECT id FROM contents WHERE state = 'pending' AND (manager = ? OR manager IS NULL) AND id NOT IN (SELECT upload FROM upload_sessions)"),
    orphanedUploads: db.prepare(`SELECT c.id FROM contents c WHERE c.state = 'pending' AND c.manager IS NOT NULL AND c.manager != ?
      AND c.id NOT IN (SELECT upload FROM upload_sessions)
      AND NOT EXISTS (SELECT 1 FROM managers m WHERE m.peer_id = c.manager AND m.seen_at > ${db.dialect.nowMs} - ?)`),
    getContent: db.prepare('SELECT * FROM contents WHERE id = ?'),
    listVisible: db.prepare("SELECT * FROM contents WHERE state = 'visible' ORDER BY created_at DESC, id"),
    hasChunk: db.prepare('SELECT 1 FROM chunks WHERE content = ? AND cid = ?'),
    chunkSize: db.prepare('SELECT size FROM chunks WHERE content = ? AND cid = ?'),
    manifestSize: db.prepare('SELECT length(manifest) AS size FROM contents WHERE id = ?'),
    replicaContents: db.prepare(`SELECT id, replicas, expires_at, length(manifest) AS manifest_size, chunk_count FROM contents
      WHERE state = 'visible' ORDER BY created_at, id`),
    contentsToDrop: db.prepare(`SELECT DISTINCT h.value AS id FROM ${db.dialect.jsonValues('h')}
      WHERE NOT EXISTS (SELECT 1 FROM contents c WHERE c.id = h.value AND c.state = 'visible'
          AND (c.expires_at IS NULL OR c.expires_at > ?))
        AND NOT EXISTS (SELECT 1 FROM copies cp JOIN contents u ON u.id = cp.content AND u.state = 'pending'
          WHERE cp.cid = h.value)`),
    publishInFlight: db.prepare(`SELECT 1 FROM copies cp JOIN contents u ON u.id = cp.content AND u.state = 'pending'
      WHERE cp.cid = ? LIMIT 1`)
  }
}
