/**
 * Key custody: the content keys, kept in their own table apart from the
 * catalog's content rows, so the code paths that list and place data never
 * read a key. A key is released only while its content is visible, and is
 * destroyed (on SQLite overwritten on disk: it runs with secure_delete) when
 * the content is deleted. The table is created by the schema (schema.ts).
 * Keys are stored sealed under the pool's master key (key-sealing.ts).
 */
import { KEY_BYTES } from '../../core/chunk-crypto.ts'
import { BadInputError } from '../../core/errors.ts'
import type { SqlEngine } from './engine.ts'
import { SEALED_KEY_BYTES, type KeySealer } from './key-sealing.ts'

export class KeyCustody {
  private readonly db: SqlEngine
  private readonly sealer: KeySealer
  private readonly insert
  private readonly select
  private readonly remove

  constructor (db: SqlEngine, sealer: KeySealer) {
    this.db = db
    this.sealer = sealer
    this.insert = db.prepare('INSERT INTO content_keys (content, key, stored_at) VALUES (?, ?, ?)')
    // The join is the release policy: no visible content row, no key.
    this.select = db.prepare(`SELECT k.key FROM content_keys k
      JOIN contents c ON c.id = k.content AND c.state = 'visible' WHERE k.content = ?`)
    this.remove = db.prepare('DELETE FROM content_keys WHERE content = ?')
  }

  /** Stores the key of a content; call in the transaction that makes the content visible. */
  async put (contentId: string, key: Uint8Array): Promise<void> {
    if (key.length !== KEY_BYTES) throw new BadInputError(`content key must be ${KEY_BYTES} bytes`)
    await this.insert.run(contentId, this.sealer.seal(contentId, key), new Date().toISOString())
  }

  /** The key of a visible content; undefined for unknown, pending or deleted contents. */
  async release (contentId: string): Promise<Uint8Array | undefined> {
    const row = await this.select.get(contentId) as { key: Uint8Array } | undefined
    return row == null ? undefined : this.sealer.open(contentId, row.key)
  }

  async destroy (contentId: string): Promise<boolean> {
    return (await this.remove.run(contentId)).changes > 0
  }

  /**
   * Run at start: refuses a master key that does not open the keys already
   * stored (MasterKeyError, before anything is served), then seals the keys
   * a manager from before sealing stored in clear. Returns how many it sealed.
   */
  async prepare (): Promise<number> {
    const sample = await this.db.prepare(`SELECT content, key FROM content_keys WHERE length(key) = ${SEALED_KEY_BYTES} LIMIT 1`).get() as { content: string, key: Uint8Array } | undefined
    if (sample != null) this.sealer.open(sample.content, sample.key)
    const clear = await this.db.prepare(`SELECT content, key FROM content_keys WHERE length(key) = ${KEY_BYTES}`).all() as Array<{ content: string, key: Uint8Array }>
    if (clear.length === 0) return 0
    const update = this.db.prepare('UPDATE content_keys SET key = ? WHERE content = ?')
    await this.db.transaction(async () => {
      for (const row of clear) await update.run(this.sealer.seal(row.content, row.key), row.content)
    })
    return clear.length
  }
}
