/**
 * Facts about the pool itself, shared by its managers: which identity it
 * signs with, and the sequence that orders what they sign.
 */
import type { SqlEngine } from './engine.ts'
import { PoolKeyMismatchError } from './errors.ts'

export class PoolMeta {
  private readonly db: SqlEngine
  private readonly s

  constructor (db: SqlEngine) {
    this.db = db
    this.s = {
      get: db.prepare('SELECT value FROM pool_meta WHERE key = ?'),
      put: db.prepare('INSERT INTO pool_meta (key, value) VALUES (?, ?)'),
      anyContent: db.prepare('SELECT 1 FROM contents LIMIT 1'),
      next: db.prepare('UPDATE counters SET value = value + 1 WHERE name = ? RETURNING value')
    }
  }

  /** The peer id of the pool identity, once a manager claimed it. */
  async poolId (): Promise<string | undefined> {
    const row = await this.s.get.get('pool_id') as { value: string } | undefined
    return row?.value
  }

  /**
   * Binds the catalog to a pool identity on the first start, and refuses a
   * manager holding another pool's key afterwards (PoolKeyMismatchError):
   * its signatures would be refused by every proxy and node of the pool.
   */
  async claimPool (id: string): Promise<'claimed' | 'matched'> {
    return await this.db.transaction(async () => {
      const found = await this.poolId()
      if (found === id) return 'matched'
      if (found != null) throw new PoolKeyMismatchError(found, id)
      await this.s.put.run('pool_id', id)
      return 'claimed'
    })
  }

  /** Whether anything was ever published (a pool from before pool keys signs with its manager's key). */
  async hasContents (): Promise<boolean> {
    return (await this.s.anyContent.get()) != null
  }

  /** The next number of a sequence every manager draws from. */
  async nextSeq (name = 'signed_seq'): Promise<number> {
    const row = await this.s.next.get(name) as { value: number } | undefined
    if (row == null) throw new Error(`no sequence ${name} in the catalog`)
    return Number(row.value)
  }
}
