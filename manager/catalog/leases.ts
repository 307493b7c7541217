/**
 * Leases: a duty (the replication controller) that one manager at a time
 * holds, until a deadline on the database's clock. Taking a lease that
 * another holds succeeds only once it expired; each new holder gets a
 * greater `epoch`, the fencing token that lets a write check it still runs
 * under the lease it was decided under.
 */
import type { SqlEngine } from './engine.ts'

export interface LeaseGrant {
  epoch: number
  /** the lease's deadline, database clock (ms) */
  expiresAt: number
}

export interface LeaseHolder extends LeaseGrant {
  holder: string
  /** the database's clock when read (ms) */
  now: number
}

export class LeaseStore {
  private readonly s

  constructor (db: SqlEngine) {
    const now = db.dialect.nowMs
    this.s = {
      // One statement, so two managers taking the same lease at once cannot both win: the row's lock orders them.
      acquire: db.prepare(`INSERT INTO leases (name, holder, epoch, expires_at) VALUES (?, ?, 1, ${now} + ?)
        ON CONFLICT (name) DO UPDATE SET
          epoch = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ${now} THEN leases.epoch ELSE leases.epoch + 1 END,
          holder = excluded.holder,
          expires_at = excluded.expires_at
        WHERE leases.holder = excluded.holder OR leases.expires_at <= ${now}
        RETURNING epoch, expires_at`),
      release: db.prepare(`UPDATE leases SET expires_at = ${now} WHERE name = ? AND holder = ? AND epoch = ?`),
      holder: db.prepare(`SELECT holder, epoch, expires_at, ${now} AS now FROM leases WHERE name = ?`),
      holds: db.prepare(`SELECT 1 FROM leases WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ${now}`)
    }
  }

  /**
   * Takes or renews `name` for `holder` for `ttlMs`; undefined while another
   * manager holds it. A renewal keeps the epoch; a lease taken anew (also by
   * the same holder after it lapsed) gets the next one.
   */
  async acquire (name: string, holder: string, ttlMs: number): Promise<LeaseGrant | undefined> {
    const row = await this.s.acquire.get(name, holder, Math.round(ttlMs)) as { epoch: number, expires_at: number } | undefined
    return row == null ? undefined : { epoch: Number(row.epoch), expiresAt: Number(row.expires_at) }
  }

  /** Ends the lease now, if `holder` still holds it in `epoch` (a clean stop hands over at once). */
  async release (name: string, holder: string, epoch: number): Promise<void> {
    await this.s.release.run(name, holder, epoch)
  }

  /** Who holds `name` (expired or not), for status and logs. */
  async holder (name: string): Promise<LeaseHolder | undefined> {
    const r = await this.s.holder.get(name) as { holder: string, epoch: number, expires_at: number, now: number } | undefined
    return r == null ? undefined : { holder: r.holder, epoch: Number(r.epoch), expiresAt: Number(r.expires_at), now: Number(r.now) }
  }

  /** True while `holder` holds `name` in `epoch` and it has not expired: the fence, read inside the write's transaction. */
  async holds (name: string, holder: string, epoch: number): Promise<boolean> {
    return (await this.s.holds.get(name, holder, epoch)) != null
  }
}
