/**
 * A name's lineage: its key and the chunks it has stored, for deduplication
 * within the name (core/chunk-keys.ts). The lineage key is made with the
 * name's row, sealed under the master key with `name:<name>` as associated
 * data, so a sealed key moved to another name's row does not open. The
 * chunk index maps tags (never plaintext hashes) to the blobs they became.
 */
import { newLineageKey } from '../../core/chunk-keys.ts'
import { ForbiddenError } from '../../core/errors.ts'
import type { SqlEngine } from './engine.ts'
import type { KeySealer } from './key-sealing.ts'
import { inBatches } from './in-batches.ts'

export interface LineageChunk {
  tag: string
  cid: string
  /** plaintext bytes */
  size: number
}

export class LineageStore {
  private readonly db: SqlEngine
  private readonly sealer: KeySealer
  private readonly s

  constructor (db: SqlEngine, sealer: KeySealer) {
    this.db = db
    this.sealer = sealer
    this.s = {
      get: db.prepare('SELECT owner, lineage_key FROM names WHERE name = ?'),
      insert: db.prepare('INSERT INTO names (name, owner, created_at, keep, lineage_key) VALUES (?, ?, ?, NULL, ?) ON CONFLICT (name) DO NOTHING'),
      setKey: db.prepare('UPDATE names SET lineage_key = ? WHERE name = ? AND lineage_key IS NULL'),
      record: db.prepare('INSERT INTO lineage_chunks (name, tag, cid, size) VALUES (?, ?, ?, ?) ON CONFLICT (name, tag) DO UPDATE SET cid = excluded.cid, size = excluded.size')
    }
  }

  /**
   * The lineage key of `name`, claiming the name for `by` when it is new (the
   * first publisher owns it) and making the key when the name has none yet (a
   * name from before deduplication). Refuses (ForbiddenError) a caller that
   * may not add to the name. One transaction: two managers racing for a new
   * name agree on its owner and its key.
   */
  async claim (name: string, by: string, mayAppend: (owner: string) => boolean, now: number): Promise<Uint8Array> {
    return await this.db.transaction(async () => {
      await this.s.insert.run(name, by, now, this.sealer.seal(aad(name), newLineageKey()))
      const row = await this.s.get.get(name) as { owner: string, lineage_key: Uint8Array | null }
      if (!mayAppend(row.owner)) throw new ForbiddenError(`the name ${name} belongs to another publisher`)
      if (row.lineage_key != null) return this.sealer.open(aad(name), row.lineage_key)
      const key = newLineageKey()
      await this.s.setKey.run(this.sealer.seal(aad(name), key), name)
      return key
    })
  }

  /** The lineage key of a name that has one. */
  async key (name: string): Promise<Uint8Array | undefined> {
    const row = await this.s.get.get(name) as { lineage_key: Uint8Array | null } | undefined
    return row?.lineage_key == null ? undefined : this.sealer.open(aad(name), row.lineage_key)
  }

  /** The chunks of `name` among `tags` (each found once, whatever its copies now). */
  async lookup (name: string, tags: readonly string[]): Promise<Map<string, LineageChunk>> {
    const rows = await inBatches(tags, async (batch, marks) => await this.db.prepare(`SELECT tag, cid, size FROM lineage_chunks WHERE name = ? AND tag IN (${marks})`)
      .all(name, ...batch) as Array<{ tag: string, cid: string, size: number }>)
    return new Map(rows.map(r => [r.tag, { tag: r.tag, cid: r.cid, size: Number(r.size) }]))
  }

  /** A chunk of `name` now has its copies; a later generation finds it by its tag. */
  async record (name: string, chunk: LineageChunk): Promise<void> {
    await this.s.record.run(name, chunk.tag, chunk.cid, chunk.size)
  }
}

function aad (name: string): string {
  return `name:${name}`
}
