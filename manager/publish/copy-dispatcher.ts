/**
 * Gets R confirmed copies of each blob of one upload onto nodes.
 *
 * Blobs are placed as they arrive, queued per node and sent as store orders of
 * up to `blobsPerOrder` blobs, with at most `ordersInFlight` orders out at a
 * time. `add` waits while the orders are all out and the queues are full,
 * which is what slows the upload's reader down to the pace the nodes can take
 * (backpressure), and it bounds the staged blobs too. A copy a node fails to store is placed again on
 * another node, a few times at most; a node whose whole order fails gets no
 * more orders from this upload. The first unrecoverable failure stops new
 * orders and is rethrown to the caller. Orders already out are left to answer
 * (only `signal`, the hard stop, aborts them): once they have, the catalog
 * says exactly which copies may exist, and the caller's cleanup misses none.
 */
import type { CID } from 'multiformats/cid'
import { CapacityError, CdnError, describeError, UpstreamError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { StoreOrder, StoreResult } from '../../core/wire.ts'
import type { Catalog } from '../catalog/catalog.ts'
import type { NodeClient } from '../nodes/node-client.ts'
import { OrderEngine } from '../orders/order-engine.ts'
import { sendStore } from '../orders/store-orders.ts'
import { placeBlob, type PlacementCandidate } from '../replication/placement.ts'

export interface CopyDispatcherComponents {
  nodes: NodeClient
  /** records copies: pending when ordered, confirmed when a node stored it, removed when it failed */
  catalog: Pick<Catalog, 'addCopy' | 'confirmCopy' | 'removeCopy'>
  /** the URL nodes fetch a blob from */
  sourceUrl: (cid: string) => string
  /** called once a blob has all its copies (its staged file is no longer needed) */
  onComplete?: (cid: string) => void
  logger: Logger
}

export interface CopyDispatcherInit {
  /** the catalog row the copies belong to (the upload id) */
  content: string
  replicas: number
  /** the pool as it was when the upload started */
  candidates: PlacementCandidate[]
  /** aborts orders in flight: the upload's deadline, the manager's shutdown */
  signal: AbortSignal
  /** default 16 */
  blobsPerOrder?: number
  /** default 8 */
  ordersInFlight?: number
  /** blobs waiting in per-node queues before the largest queue is sent early (default 256) */
  maxQueuedBlobs?: number
  /** ms per store order (default 2 min) */
  orderTimeoutMs?: number
  /** nodes tried per blob beyond the first R before giving up (default 3) */
  extraAttempts?: number
}

interface BlobState {
  cid: CID
  id: string
  size: number
  confirmed: Set<string>
  pending: Set<string>
  tried: Set<string>
  lastError?: string
}

export class CopyDispatcher {
  private readonly c: CopyDispatcherComponents
  private readonly log: Logger
  private readonly content: string
  private readonly replicas: number
  private readonly blobsPerOrder: number
  private readonly ordersInFlight: number
  private readonly maxQueuedBlobs: number
  private readonly orderTimeoutMs: number
  private readonly extraAttempts: number
  private readonly candidates: PlacementCandidate[]
  private readonly byPeer: Map<string, PlacementCandidate>
  private readonly signal: AbortSignal
  /** blobs still short of R confirmed copies */
  private readonly open = new Map<string, BlobState>()
  /** the upload's policy: the longest queue goes out while a slot is free */
  private readonly orders: OrderEngine<BlobState>
  private readonly excluded = new Set<string>()
  private readonly holderSet = new Set<string>()
  private failure?: CdnError

  constructor (components: CopyDispatcherComponents, init: CopyDispatcherInit) {
    this.c = components
    this.log = components.logger
    this.content = init.content
    this.replicas = init.replicas
    this.blobsPerOrder = init.blobsPerOrder ?? 16
    this.ordersInFlight = init.ordersInFlight ?? 8
    this.maxQueuedBlobs = init.maxQueuedBlobs ?? 256
    this.orderTimeoutMs = init.orderTimeoutMs ?? 120_000
    this.extraAttempts = init.extraAttempts ?? 3
    // Copies, so planned bytes accumulate here without touching the caller's objects.
    this.candidates = init.candidates.map(c => ({ ...c, planned: c.planned ?? 0 }))
    this.byPeer = new Map(this.candidates.map(c => [c.peerId, c]))
    this.signal = init.signal
    this.orders = new OrderEngine<BlobState>({
      maxInFlight: this.ordersInFlight,
      batchSize: this.blobsPerOrder,
      pick: 'longest',
      canSend: () => this.failure == null && !this.signal.aborted,
      send: async (node, batch) => { await this.send(node, batch) },
      // Only the catalog can throw here; without its records the upload cannot go on.
      onError: (_node, _batch, err) => { this.fail(new CdnError(`recording copies failed: ${describeError(err)}`, 'ERR_INTERNAL', 500, { cause: err })) }
    })
  }

  /** Nodes holding at least one confirmed copy. */
  holders (): Set<string> {
    return new Set(this.holderSet)
  }

  /** Places a blob and queues its copies; waits while the nodes are behind (backpressure). */
  async add (cid: CID, size: number): Promise<void> {
    this.throwIfStopped()
    const state: BlobState = { cid, id: cid.toString(), size, confirmed: new Set(), pending: new Set(), tried: new Set() }
    this.open.set(state.id, state)
    await this.placeMore(state)
    await this.pump()
  }

  /** Sends everything still queued and waits until every blob has its copies; throws the failure if not. */
  async finish (): Promise<void> {
    for (;;) {
      this.orders.fill()
      // fill() sends nothing once stopped; never wait on an empty set of orders.
      this.throwIfStopped()
      if (this.orders.queued === 0 && this.orders.inFlight === 0) break
      await this.orders.oneAnswered()
    }
    this.throwIfStopped()
    if (this.open.size > 0) {
      const [first] = this.open.values()
      throw new UpstreamError(`${this.open.size} blobs lack ${this.replicas} confirmed copies (e.g. ${first.id})`)
    }
  }

  /** Stops sending and waits until every order in flight has answered, so the caller can clean up after them. */
  async settle (reason: CdnError): Promise<void> {
    this.fail(reason)
    await this.orders.settled()
  }

  private throwIfStopped (): void {
    if (this.failure != null) throw this.failure
    this.signal.throwIfAborted()
  }

  private fail (err: CdnError): void {
    this.failure ??= err
  }

  /** Chooses nodes for the copies a blob still lacks and queues them. */
  private async placeMore (b: BlobState): Promise<void> {
    const need = this.replicas - b.confirmed.size - b.pending.size
    if (need <= 0) return
    if (b.tried.size + need > this.replicas + this.extraAttempts) {
      this.fail(new UpstreamError(`blob ${b.id} could not get ${this.replicas} confirmed copies after trying ${b.tried.size} nodes (last error: ${b.lastError ?? 'none'})`))
      return
    }
    const eligible = this.candidates.filter(c => !this.excluded.has(c.peerId) && !b.tried.has(c.peerId))
    const avoidZones: string[] = []
    for (const p of [...b.confirmed, ...b.pending]) {
      const zone = this.byPeer.get(p)?.zone
      if (zone != null && zone !== '') avoidZones.push(zone)
    }
    let targets: PlacementCandidate[]
    try {
      targets = placeBlob(b.cid, eligible, need, b.size, { avoidZones })
    } catch (err) {
      if (err instanceof CapacityError && b.tried.size > 0) {
        this.fail(new UpstreamError(`blob ${b.id} could not get ${this.replicas} confirmed copies: no other node can take it (last error: ${b.lastError ?? 'none'})`, { cause: err }))
      } else {
        this.fail(err instanceof CdnError ? err : new CdnError(describeError(err), 'ERR_INTERNAL', 500, { cause: err }))
      }
      return
    }
    for (const t of targets) {
      b.tried.add(t.peerId)
      b.pending.add(t.peerId)
      t.planned = (t.planned ?? 0) + b.size
    }
    // Each copy is recorded (pending) before its order can go out, so a crash leaves no copy unknown.
    for (const t of targets) {
      await this.c.catalog.addCopy(this.content, b.id, t.peerId, 'pending')
      this.orders.enqueue(t.peerId, b)
    }
  }

  /**
   * Adaptive batching: while an order slot is free, the longest queue goes out
   * at once (no waiting for a batch to fill when nodes keep up); while every
   * slot is busy, queues grow into full batches, and the caller waits once a
   * full batch or too many queued blobs are waiting (backpressure).
   */
  private async pump (): Promise<void> {
    for (;;) {
      this.orders.fill()
      this.throwIfStopped()
      if (!this.backlogged()) return
      await this.orders.oneAnswered()
    }
  }

  private backlogged (): boolean {
    return this.orders.queued > this.maxQueuedBlobs || this.orders.hasQueueOf(this.blobsPerOrder)
  }

  /** One store order of a node's batch, and its outcome recorded. */
  private async send (node: string, batch: BlobState[]): Promise<void> {
    const order: StoreOrder = {
      type: 'store',
      blobs: batch.map(b => ({ cid: b.id, sources: [this.c.sourceUrl(b.id)] })),
      contents: []
    }
    const outcome = await sendStore(this.c.nodes, node, order, { signal: this.signal, timeout: this.orderTimeoutMs })
    if (outcome.ok) await this.onStored(node, batch, outcome.results)
    else await this.onOrderFailed(node, batch, outcome.error)
  }

  private async onStored (node: string, batch: BlobState[], results: Map<string, StoreResult>): Promise<void> {
    const failed: BlobState[] = []
    for (const b of batch) {
      b.pending.delete(node)
      const r = results.get(b.id)
      if (r?.ok === true) {
        b.confirmed.add(node)
        this.holderSet.add(node)
        await this.c.catalog.confirmCopy(b.id, node)
        if (b.confirmed.size >= this.replicas && this.open.delete(b.id)) this.c.onComplete?.(b.id)
      } else {
        b.lastError = `${node}: ${r?.error ?? 'no result for this blob'}`
        await this.c.catalog.removeCopy(b.id, node)
        this.unplan(node, b.size)
        failed.push(b)
      }
    }
    if (failed.length === 0) return
    this.log.warn({ node, failed: failed.length, of: batch.length, err: failed[0].lastError }, 'node failed to store copies; placing them elsewhere')
    for (const b of failed) if (this.failure == null && !this.signal.aborted) await this.placeMore(b)
  }

  private async onOrderFailed (node: string, batch: BlobState[], err: unknown): Promise<void> {
    if (this.signal.aborted) return
    this.excluded.add(node)
    this.log.warn({ node, blobs: batch.length, err: describeError(err) }, 'store order failed; node gets no more copies of this upload')
    for (const b of batch) {
      b.pending.delete(node)
      b.lastError = `${node}: ${describeError(err)}`
      // The node may have stored the blob before the order failed; if so, its GC reclaims it.
      await this.c.catalog.removeCopy(b.id, node)
      this.unplan(node, b.size)
    }
    for (const b of batch) if (this.failure == null) await this.placeMore(b)
  }

  private unplan (node: string, size: number): void {
    const c = this.byPeer.get(node)
    if (c != null) c.planned = Math.max(0, (c.planned ?? 0) - size)
  }
}
