/**
 * The one order engine: items queued per node, cut into orders, at most
 * `maxInFlight` orders out across the pool and at most `perNode` to one node.
 * What differs between the paths that send orders is policy, given here as
 * parameters:
 *
 * - `pick: 'longest'` (an upload): a free slot takes the longest queue at once,
 *   so nodes that keep up never wait for a batch to fill;
 * - `pick: 'oldest'` (replication): a free slot takes the node that has waited
 *   longest, and with `perNode: 1` a node's orders never overtake each other.
 *
 * `send` carries out one order and records its outcome; it should not throw,
 * and if it does the error goes to `onError`. `onSettled` runs for every batch
 * sent, and `drop` hands back what is still queued when the owner stops.
 */
export interface OrderEngineInit<T> {
  /** orders out at once across the pool */
  maxInFlight: number
  /** orders out at once to one node (default no limit beyond maxInFlight) */
  perNode?: number
  /** items per order */
  batchSize: number
  pick: 'longest' | 'oldest'
  /** false while no new order may go out (a failure, a stop) */
  canSend: () => boolean
  send: (node: string, batch: T[]) => Promise<void>
  onError?: (node: string, batch: T[], err: unknown) => void
  onSettled?: (node: string, batch: T[]) => void
}

export class OrderEngine<T> {
  private readonly init: OrderEngineInit<T>
  private readonly perNode: number
  private readonly queues = new Map<string, T[]>()
  /** node → when its head item became ready to go (a counter, for 'oldest') */
  private readonly readySince = new Map<string, number>()
  private readonly out = new Map<string, number>()
  private readonly inflight = new Set<Promise<void>>()
  private clock = 0
  private queuedItems = 0

  constructor (init: OrderEngineInit<T>) {
    this.init = init
    this.perNode = init.perNode ?? Infinity
  }

  /** Items waiting in queues. */
  get queued (): number {
    return this.queuedItems
  }

  /** Orders out. */
  get inFlight (): number {
    return this.inflight.size
  }

  /** Whether any node's queue holds at least `n` items. */
  hasQueueOf (n: number): boolean {
    for (const q of this.queues.values()) if (q.length >= n) return true
    return false
  }

  /** Queues an item for a node; call `fill` to send. */
  enqueue (node: string, item: T): void {
    let q = this.queues.get(node)
    if (q == null) {
      q = []
      this.queues.set(node, q)
      // A node with all its orders out is ready only once one answers.
      if ((this.out.get(node) ?? 0) < this.perNode) this.readySince.set(node, this.clock++)
    }
    q.push(item)
    this.queuedItems++
  }

  /** Sends orders while slots are free. */
  fill (): void {
    while (this.inflight.size < this.init.maxInFlight && this.init.canSend()) {
      const node = this.next()
      if (node == null) return
      this.send(node)
    }
  }

  /** Resolves once one order out has answered. */
  async oneAnswered (): Promise<void> {
    await Promise.race(this.inflight)
  }

  /** Resolves once no order is out (new ones may still be queued). */
  async settled (): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight])
  }

  /** Takes everything queued out of the engine, per node. */
  drop (): Array<[string, T[]]> {
    const all = [...this.queues]
    this.queues.clear()
    this.readySince.clear()
    this.queuedItems = 0
    return all
  }

  private next (): string | undefined {
    let best: string | undefined
    let score = -Infinity
    for (const [node, q] of this.queues) {
      if ((this.out.get(node) ?? 0) >= this.perNode) continue
      const s = this.init.pick === 'longest' ? q.length : -(this.readySince.get(node) ?? 0)
      if (s > score) {
        best = node
        score = s
      }
    }
    return best
  }

  private send (node: string): void {
    const q = this.queues.get(node)
    if (q == null || q.length === 0) return
    const batch = q.splice(0, this.init.batchSize)
    this.readySince.delete(node)
    if (q.length === 0) this.queues.delete(node)
    else if ((this.out.get(node) ?? 0) + 1 < this.perNode) this.readySince.set(node, this.clock++)
    this.queuedItems -= batch.length
    this.out.set(node, (this.out.get(node) ?? 0) + 1)
    const p = (async () => {
      try {
        await this.init.send(node, batch)
      } catch (err) {
        if (this.init.onError == null) throw err
        this.init.onError(node, batch, err)
      } finally {
        const n = (this.out.get(node) ?? 1) - 1
        if (n <= 0) this.out.delete(node)
        else this.out.set(node, n)
        this.init.onSettled?.(node, batch)
      }
    })().finally(() => {
      this.inflight.delete(p)
      if (this.queues.has(node) && !this.readySince.has(node)) this.readySince.set(node, this.clock++)
      // A freed slot takes the next order at once.
      this.fill()
    })
    this.inflight.add(p)
  }
}
