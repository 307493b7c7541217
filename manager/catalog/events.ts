/**
 * The event log: what happened in the pool, newest first for `cdn events`.
 * Stores record their events inside their own transactions.
 */
import type { SqlEngine } from './engine.ts'
import { as, eventRow, type EventColumns } from './rows.ts'
import type { EventKind, EventRow, NewEvent } from './types.ts'

export class EventStore {
  private readonly db: SqlEngine
  private readonly insert
  private readonly list
  private readonly onEvent?: (kind: EventKind) => void

  constructor (db: SqlEngine, onEvent?: (kind: EventKind) => void) {
    this.db = db
    this.onEvent = onEvent
    this.insert = db.prepare('INSERT INTO events (at, kind, content, node, detail) VALUES (?, ?, ?, ?, ?)')
    this.list = db.prepare('SELECT * FROM events ORDER BY id DESC LIMIT ?')
  }

  async record (e: NewEvent, at = new Date()): Promise<void> {
    await this.insert.run(at.toISOString(), e.kind, e.content ?? null, e.node ?? null, e.detail == null ? null : JSON.stringify(e.detail))
    // Counted once the event is committed: a rolled-back (or retried) transaction counts nothing.
    const { onEvent } = this
    if (onEvent != null) this.db.afterCommit(() => { onEvent(e.kind) })
  }

  /** Newest first. */
  async latest (limit: number): Promise<EventRow[]> {
    return as<EventColumns>(await this.list.all(limit)).map(eventRow)
  }
}
