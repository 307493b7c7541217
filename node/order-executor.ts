/**
 * Carries out the manager's orders. `store`: fetch each blob not already held
 * (bounded concurrency, verified against its id), then index the listed
 * contents from their manifests and announce them in the DHT; the reply has a
 * result per blob. `delete`: forget and withdraw the listed contents, remove
 * the blobs.
 */
import pLimit from 'p-limit'
import type { CID } from 'multiformats/cid'
import { describeError } from '../core/errors.ts'
import { parseBlobId, parseContentId } from '../core/ids.ts'
import type { Logger } from '../core/log.ts'
import type { Deleted, DeleteOrder, Stored, StoreOrder, StoreResult } from '../core/wire.ts'
import type { BlobFetcher } from './blob-fetcher.ts'
import type { BlobStore } from './blob-store.ts'
import type { ContentAnnouncer } from './content-announcer.ts'
import type { ContentIndex } from './content-index.ts'
import type { NodeMetrics } from './node-metrics.ts'

export interface OrderExecutorComponents {
  store: Pick<BlobStore, 'refresh' | 'delete'>
  index: Pick<ContentIndex, 'add' | 'remove' | 'chunksOf' | 'isReferenced'>
  fetcher: Pick<BlobFetcher, 'fetch'>
  announcer: Pick<ContentAnnouncer, 'announce' | 'withdraw'>
  metrics?: Pick<NodeMetrics, 'orders' | 'blobsFetched'>
  logger: Logger
}

export interface OrderExecutorInit {
  /** blobs fetched at once for one order (default 8) */
  concurrency?: number
}

export class OrderExecutor {
  private readonly c: OrderExecutorComponents
  private readonly log: Logger
  private readonly concurrency: number

  constructor (components: OrderExecutorComponents, init: OrderExecutorInit = {}) {
    this.c = components
    this.log = components.logger
    this.concurrency = Math.max(1, init.concurrency ?? 8)
  }

  /** Runs a validated order (core/wire.ts parseOrder). */
  async execute (order: StoreOrder | DeleteOrder, signal: AbortSignal): Promise<Stored | Deleted> {
    return order.type === 'store' ? await this.store(order, signal) : await this.delete(order, signal)
  }

  async store (order: StoreOrder, signal: AbortSignal): Promise<Stored> {
    const started = performance.now()
    const results: StoreResult[] = await pLimit(this.concurrency).map(order.blobs, async blob => await this.storeOne(blob.cid, blob.sources, signal))

    const indexed: CID[] = []
    for (const text of order.contents) {
      const id = parseContentId(text)
      try {
        await this.c.index.add(id)
        indexed.push(id)
      } catch (err) {
        // The manager must learn the content is not served here, even if its manifest blob arrived.
        const error = `content not indexed: ${describeError(err)}`
        this.log.warn({ content: text, err: describeError(err) }, 'could not index content of a store order')
        const own = results.find(r => r.cid === text || r.cid === id.toString())
        if (own != null) {
          own.ok = false
          own.error = error
        } else {
          results.push({ cid: text, ok: false, error })
        }
      }
    }
    await Promise.all(indexed.map(async id => await this.c.announcer.announce(id, signal)))

    const failed = results.filter(r => !r.ok).length
    const outcome = failed === 0 ? 'ok' : failed === results.length ? 'failed' : 'partial'
    this.c.metrics?.orders.inc({ kind: 'store', outcome })
    this.log.info({ blobs: order.blobs.length, contents: indexed.length, failed, ms: Math.round(performance.now() - started) }, 'store order done')
    return { type: 'stored', results }
  }

  private async storeOne (text: string, sources: readonly string[], signal: AbortSignal): Promise<StoreResult> {
    try {
      const cid = parseBlobId(text)
      // Refreshing a held blob also keeps the GC from taking it while its manifest is on the way.
      if (await this.c.store.refresh(cid)) return { cid: text, ok: true }
      await this.c.fetcher.fetch(cid, sources, signal)
      this.c.metrics?.blobsFetched.inc({ outcome: 'ok' })
      return { cid: text, ok: true }
    } catch (err) {
      this.c.metrics?.blobsFetched.inc({ outcome: 'failed' })
      this.log.warn({ blob: text, err: describeError(err) }, 'could not store blob')
      return { cid: text, ok: false, error: describeError(err) }
    }
  }

  /**
   * A content listed here also loses its manifest blob: the index is rebuilt
   * from held manifests at start, so a kept manifest would bring the content
   * back after a restart.
   */
  async delete (order: DeleteOrder, signal: AbortSignal): Promise<Deleted> {
    const doomed = new Map<string, CID>()
    for (const text of order.contents) {
      const id = parseContentId(text)
      this.c.index.remove(id)
      await this.c.announcer.withdraw(id, signal)
      doomed.set(id.toString(), id)
    }
    for (const text of order.blobs) {
      const cid = parseBlobId(text)
      doomed.set(cid.toString(), cid)
    }
    const removed: string[] = []
    let failed = 0
    for (const [key, cid] of doomed) {
      try {
        await this.c.store.delete(cid)
        removed.push(key)
      } catch (err) {
        failed++
        this.log.error({ blob: key, err: describeError(err) }, 'could not delete blob')
      }
    }
    this.c.metrics?.orders.inc({ kind: 'delete', outcome: failed === 0 ? 'ok' : 'partial' })
    this.log.info({ blobs: removed.length, contents: order.contents.length, failed }, 'delete order done')
    return { type: 'deleted', removed }
  }

  /**
   * Drops held contents the manager's ack named (deleted, expired, or unknown
   * to the catalog): each stops being provided, then its manifest and every
   * chunk no other held content needs are deleted. Works from the node's own
   * index, so it also finishes a delete order this node never received.
   * Returns the ids of the contents dropped.
   */
  async drop (contents: readonly string[], signal: AbortSignal): Promise<string[]> {
    const dropped: string[] = []
    let blobs = 0
    let failed = 0
    for (const text of contents) {
      const id = parseContentId(text)
      const chunks = this.c.index.chunksOf(id)
      if (chunks == null || !this.c.index.remove(id)) continue
      await this.c.announcer.withdraw(id, signal)
      const doomed = [id.toString(), ...chunks.filter(c => !this.c.index.isReferenced(c))]
      for (const blob of new Set(doomed)) {
        try {
          if (await this.c.store.delete(parseBlobId(blob))) blobs++
        } catch (err) {
          failed++
          this.log.error({ blob, content: text, err: describeError(err) }, 'could not delete a blob of a dropped content')
        }
      }
      dropped.push(id.toString())
    }
    if (dropped.length > 0) {
      this.c.metrics?.orders.inc({ kind: 'drop', outcome: failed === 0 ? 'ok' : 'partial' })
      this.log.info({ contents: dropped.length, blobs, failed }, 'dropped contents the manager no longer keeps')
    }
    return dropped
  }
}
