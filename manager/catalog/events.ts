/**
 * The event log: what happened in the pool, newest first for `cdn events`.
 * Stores record their events inside their own transactions.
 */
import type { SqlEngine } from './engine.ts'
import { as, eventRow, type EventColumns } from './rows.ts'
import type { EventKind, EventRow, NewEvent } from './types.ts'

export class EventStore {
  private readonly insert
  private readonly list
  private readonly onEvent?: (kind: EventKind) => void

  constructor (db: SqlEngine, onEvent?: (kind: EventKind) => void) {
    this.onEvent = onEvent
    this.insert = db.prepare('INSERT INTO events (at, kind, content, node, detail) VALUES (?, ?, ?, ?, ?)')
    this.list = db.prepare('SELECT * FROM events ORDER BY id DESC LIMIT ?')
  }

  record (e: NewEvent, at = new Date()): void {
    this.insert.run(at.toISOString(), e.kind, e.content ?? null, e.node ?? null, e.detail == null ? null : JSON.stringify(e.detail))
    this.onEvent?.(e.kind)
  }

  /** Newest first. */
  latest (limit: number): EventRow[] {
    return as<EventColumns>(this.list.all(limit)).map(eventRow)
  }
}
