import type { SqlEngine } from './engine.ts'
import type { EventStore } from './events.ts'

/** A store of the catalog: its engine, the event log its transactions write to, and its prepared statements. */
export abstract class Store<Statements> {
  protected readonly db: SqlEngine
  protected readonly events: EventStore
  protected readonly s: Statements

  constructor (db: SqlEngine, events: EventStore, statements: Statements) {
    this.db = db
    this.events = events
    this.s = statements
  }
}
