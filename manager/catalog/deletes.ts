/**
 * Deletes that finish: tombstones (a deleted content, kept for good, told
 * apart from a publish in flight) and the blobs a delete still owes each
 * node, written in the delete's own transaction and cleared as orders land.
 */
import type { SqlEngine } from './engine.ts'
import { as, pendingDeleteRow, type PendingDeleteColumns } from './rows.ts'
import type { PendingDelete } from './types.ts'

export class DeleteStore {
  private readonly s: ReturnType<typeof prepare>

  constructor (db: SqlEngine) {
    this.s = prepare(db)
  }

  /** Records that a content was deleted (publisher or expiry); kept for good. */
  async addTombstone (id: string, reason: string, now: number): Promise<void> {
    await this.s.insertTombstone.run(id, now, reason)
  }

  async isTombstoned (id: string): Promise<boolean> {
    return (await this.s.isTombstoned.get(id)) != null
  }

  /** Notes blobs a delete still has to remove on a node (replacing an earlier note for the pair). */
  async addPendingDelete (content: string, node: string, blobs: string[]): Promise<void> {
    await this.s.upsertPendingDelete.run(content, node, JSON.stringify(blobs))
  }

  async clearPendingDelete (content: string, node: string): Promise<void> {
    await this.s.deletePendingDelete.run(content, node)
  }

  /** Every delete still owed to a node, oldest content first. */
  async pendingDeletes (): Promise<PendingDelete[]> {
    return as<PendingDeleteColumns>(await this.s.pendingDeletes.all()).map(pendingDeleteRow)
  }

  /** Forgets the deletes owed to `node` for contents it no longer holds (its heartbeat's complete `held` list). */
  async clearPendingDeletesNotHeld (node: string, held: readonly string[]): Promise<number> {
    return Number((await this.s.clearPendingNotHeld.run(node, JSON.stringify(held))).changes)
  }
}

function prepare (db: SqlEngine) {
  return {
    insertTombstone: db.prepare('INSERT INTO tombstones (id, deleted_at, reason) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING'),
    isTombstoned: db.prepare('SELECT 1 FROM tombstones WHERE id = ?'),
    upsertPendingDelete: db.prepare(`INSERT INTO pending_deletes (content, node, blobs) VALUES (?, ?, ?)
      ON CONFLICT (content, node) DO UPDATE SET blobs = excluded.blobs`),
    deletePendingDelete: db.prepare('DELETE FROM pending_deletes WHERE content = ? AND node = ?'),
    pendingDeletes: db.prepare(`SELECT pd.content AS content, pd.node AS node, pd.blobs AS blobs FROM pending_deletes pd
      LEFT JOIN tombstones t ON t.id = pd.content ORDER BY t.deleted_at, pd.content, pd.node`),
    clearPendingNotHeld: db.prepare(`DELETE FROM pending_deletes WHERE node = ? AND content NOT IN (SELECT j.value FROM ${db.dialect.jsonValues('j')})`)
  }
}
