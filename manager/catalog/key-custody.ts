/**
 * Key custody: the content keys, kept in their own table apart from the
 * catalog's content rows, so the code paths that list and place data never
 * read a key. A key is released only while its content is visible, and is
 * destroyed (on SQLite overwritten on disk: it runs with secure_delete) when
 * the content is deleted. The table is created by the schema (schema.ts).
 */
import { KEY_BYTES } from '../../core/chunk-crypto.ts'
import { BadInputError } from '../../core/errors.ts'
import type { SqlEngine } from './engine.ts'

export class KeyCustody {
  private readonly insert
  private readonly select
  private readonly remove

  constructor (db: SqlEngine) {
    this.insert = db.prepare('INSERT INTO content_keys (content, key, stored_at) VALUES (?, ?, ?)')
    // The join is the release policy: no visible content row, no key.
    this.select = db.prepare(`SELECT k.key FROM content_keys k
      JOIN contents c ON c.id = k.content AND c.state = 'visible' WHERE k.content = ?`)
    this.remove = db.prepare('DELETE FROM content_keys WHERE content = ?')
  }

  /** Stores the key of a content; call in the transaction that makes the content visible. */
  async put (contentId: string, key: Uint8Array): Promise<void> {
    if (key.length !== KEY_BYTES) throw new BadInputError(`content key must be ${KEY_BYTES} bytes`)
    await this.insert.run(contentId, key, new Date().toISOString())
  }

  /** The key of a visible content; undefined for unknown, pending or deleted contents. */
  async release (contentId: string): Promise<Uint8Array | undefined> {
    const row = await this.select.get(contentId) as { key: Uint8Array } | undefined
    return row?.key
  }

  async destroy (contentId: string): Promise<boolean> {
    return (await this.remove.run(contentId)).changes > 0
  }
}
