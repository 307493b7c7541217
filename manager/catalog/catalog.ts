/**
 * The catalog: what the pool holds and where. One store per table family
 * (contents, copies, nodes, deletes, events), each owning its statements and
 * the transactions that pair a state change with its event. The Catalog is
 * the one object the rest of the manager holds: it offers every store's
 * methods under one name, composes stores in `transaction`, and hides the
 * engine (engine.ts), so no module outside this folder touches the database.
 */
import type { CatalogEngine, SqlEngine } from './engine.ts'
import { ContentStore } from './contents.ts'
import { CopyStore } from './copies.ts'
import { DeleteStore } from './deletes.ts'
import { EventStore } from './events.ts'
import { NodeStore } from './nodes.ts'
import { NotFoundError } from '../../core/errors.ts'
import type { ChunkAtRisk, ContentRow, CopySummary, EventKind, EventRow, NewEvent, NodeRow } from './types.ts'

export type * from './types.ts'

export interface CatalogInit {
  /** called after an event row is written, e.g. to count events by kind */
  onEvent?: (kind: EventKind) => void
}

/** A store's public methods (its private fields are not part of the catalog). */
type Methods<T> = { [K in keyof T]: T[K] }

// The catalog answers every store's methods; the constructor binds them (see `expose`).
export interface Catalog extends Methods<ContentStore>, Methods<CopyStore>, Methods<NodeStore>, Methods<DeleteStore> {}

export class Catalog {
  private readonly engine: CatalogEngine
  private readonly events: EventStore

  constructor (db: SqlEngine, init: CatalogInit = {}) {
    this.engine = db
    this.events = new EventStore(db, init.onEvent)
    expose(this, new ContentStore(db, this.events))
    expose(this, new CopyStore(db, this.events))
    expose(this, new NodeStore(db, this.events))
    expose(this, new DeleteStore(db))
  }

  /** Runs `fn` in one transaction across stores: all of its writes land, or none. */
  async transaction<T> (fn: () => Promise<T>): Promise<T> {
    return this.engine.transaction(fn)
  }

  /** Makes what is committed durable, before a client is told (a publish's 201, a delete's 200). */
  async sync (): Promise<void> {
    await this.engine.sync()
  }

  /** Visible contents, newest first, with their counted copies. */
  async listVisible (): Promise<Array<ContentRow & { copies: CopySummary }>> {
    return this.visibleWith(await this.summaries())
  }

  async recordEvent (e: NewEvent, at = new Date()): Promise<void> {
    await this.events.record(e, at)
  }

  /**
   * A store order whose outcome is unknown: the copies it may have made, of
   * contents still visible, turn suspect in the transaction that records `event`.
   */
  async suspectOrderedCopies (node: string, copies: ReadonlyArray<{ content: string, cid: string }>, event: NewEvent): Promise<void> {
    await this.transaction(async () => {
      for (const c of copies) if (await this.getVisible(c.content) != null) await this.addCopy(c.content, c.cid, node, 'suspect')
      await this.recordEvent(event)
    })
  }

  /** Sets a node to drain and records it (once: draining again changes nothing); the node as it is now. */
  async startDrain (peerId: string, by: string): Promise<NodeRow> {
    return this.transaction(async () => {
      const before = await this.getNode(peerId)
      if (before == null) throw new NotFoundError(`no node ${peerId} in the pool`)
      if (!before.drain) {
        await this.setDrain(peerId)
        const holdings = (await this.holdingsByNode()).get(peerId)
        await this.recordEvent({ kind: 'node-draining', node: peerId, detail: { by, copies: holdings?.copies ?? 0, contents: holdings?.contents ?? 0, state: before.state } })
      }
      return (await this.getNode(peerId))!
    })
  }

  /**
   * Forgets a node for good, with its event, unless a chunk it holds would
   * fall below `minCopies` counted copies without it: then nothing changes
   * and those chunks are returned.
   */
  async removeNodeUnlessNeeded (peerId: string, minCopies: number, by: string, now: number): Promise<ChunkAtRisk[]> {
    return this.transaction(async () => {
      const node = await this.getNode(peerId)
      if (node == null) throw new NotFoundError(`no node ${peerId} in the pool`)
      const atRisk = await this.chunksAtRiskWithout(peerId, minCopies)
      if (atRisk.length > 0) return atRisk
      const holdings = (await this.holdingsByNode()).get(peerId)
      await this.removeNode(peerId, now)
      await this.recordEvent({ kind: 'node-removed', node: peerId, detail: { by, state: node.state, copies: holdings?.copies ?? 0 } })
      return []
    })
  }

  /** Newest first. */
  async listEvents (limit: number): Promise<EventRow[]> {
    return this.events.latest(limit)
  }
}

/** Binds every method of `store` onto the catalog under its own name (store method names are unique). */
function expose (catalog: Catalog, store: object): void {
  const proto = Object.getPrototypeOf(store) as Record<string, unknown>
  for (const name of Object.getOwnPropertyNames(proto)) {
    const method = proto[name]
    if (name === 'constructor' || typeof method !== 'function') continue
    if (name in catalog) throw new Error(`catalog method ${name} is defined twice`)
    Object.defineProperty(catalog, name, { value: method.bind(store) })
  }
}
