/**
 * The pool's managers: each refreshes its own row while it runs, on the
 * database's clock, so any of them can tell which others are alive (to list
 * them to nodes, and to collect a dead one's uploads).
 */
import type { SqlEngine } from './engine.ts'

export interface ManagerRow {
  peerId: string
  http: string
  multiaddrs: string[]
  startedAt: number
  seenAt: number
}

interface Columns { peer_id: string, http: string, multiaddrs: string, started_at: number, seen_at: number }

const managerRow = (r: Columns): ManagerRow => ({
  peerId: r.peer_id,
  http: r.http,
  multiaddrs: JSON.parse(r.multiaddrs) as string[],
  startedAt: Number(r.started_at),
  seenAt: Number(r.seen_at)
})

export class ManagerStore {
  private readonly s

  constructor (db: SqlEngine) {
    const now = db.dialect.nowMs
    this.s = {
      touch: db.prepare(`INSERT INTO managers (peer_id, http, multiaddrs, started_at, seen_at) VALUES (?, ?, ?, ${now}, ${now})
        ON CONFLICT (peer_id) DO UPDATE SET http = excluded.http, multiaddrs = excluded.multiaddrs, seen_at = excluded.seen_at`),
      live: db.prepare(`SELECT * FROM managers WHERE seen_at > ${now} - ? ORDER BY started_at, peer_id`),
      leave: db.prepare('DELETE FROM managers WHERE peer_id = ?')
    }
  }

  /** Says this manager is alive now, with where it is reached. */
  async touch (m: { peerId: string, http: string, multiaddrs: string[] }): Promise<void> {
    await this.s.touch.run(m.peerId, m.http, JSON.stringify(m.multiaddrs))
  }

  /** Managers seen within the last `withinMs` of the database's clock, oldest first. */
  async live (withinMs: number): Promise<ManagerRow[]> {
    return (await this.s.live.all(withinMs) as Columns[]).map(managerRow)
  }

  /** A manager stopping cleanly leaves the list at once. */
  async leave (peerId: string): Promise<void> {
    await this.s.leave.run(peerId)
  }
}
