/**
 * Deleting a content: its rows and its key go first, in one transaction, so
 * the content is unlisted and unreadable at once (even a copy that survives
 * on a node is now ciphertext nobody can open); then every node holding one
 * of its blobs is told to delete them and stop providing it. A node that is
 * down keeps its orphans until its own GC collects them.
 */
import { describeError, NotFoundError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import type { Catalog } from './catalog.ts'
import type { KeyCustody } from './key-custody.ts'
import { mapSettled } from './map-limit.ts'
import type { NodeClient } from './node-client.ts'

const DELETE_BATCH = 4096

export interface ContentDeleterComponents {
  catalog: Catalog
  keys: KeyCustody
  nodes: NodeClient
  logger: Logger
}

export interface ContentDeleterInit {
  /** ms per delete order (default 30 s) */
  orderTimeoutMs?: number
  /** orders out at once (default 16) */
  concurrency?: number
}

export interface DeleteOptions {
  signal?: AbortSignal
  /** the event recorded (default `content-deleted`; expiry records `content-expired`) */
  event?: string
}

export interface DeleteOutcome {
  id: string
  nodes: number
  /** nodes the order did not reach */
  unreachable: string[]
}

export class ContentDeleter {
  private readonly c: ContentDeleterComponents
  private readonly orderTimeoutMs: number
  private readonly concurrency: number

  constructor (components: ContentDeleterComponents, init: ContentDeleterInit = {}) {
    this.c = components
    this.orderTimeoutMs = init.orderTimeoutMs ?? 30_000
    this.concurrency = init.concurrency ?? 16
  }

  async delete (contentId: string, by: string, options: DeleteOptions = {}): Promise<DeleteOutcome> {
    const { catalog, keys } = this.c
    const signal = options.signal
    const byNode = catalog.db.transaction(() => {
      if (catalog.getVisible(contentId) == null) throw new NotFoundError(`no content ${contentId}`)
      const byNode = new Map<string, string[]>()
      for (const copy of catalog.copiesOf(contentId)) {
        const list = byNode.get(copy.node) ?? []
        list.push(copy.cid)
        byNode.set(copy.node, list)
      }
      catalog.dropContent(contentId)
      keys.destroy(contentId)
      catalog.recordEvent({ kind: options.event ?? 'content-deleted', content: contentId, detail: { by, nodes: byNode.size } })
      return byNode
    })

    const orders: Array<{ node: string, blobs: string[] }> = []
    for (const [node, blobs] of byNode) {
      for (let i = 0; i < blobs.length; i += DELETE_BATCH) orders.push({ node, blobs: blobs.slice(i, i + DELETE_BATCH) })
    }
    const results = await mapSettled(orders, this.concurrency, async (o) => {
      await this.c.nodes.delete(o.node, { type: 'delete', blobs: o.blobs, contents: [contentId] }, { signal, timeout: this.orderTimeoutMs })
    })
    const unreachable = new Set<string>()
    results.forEach((r, i) => {
      if (r.status === 'rejected') {
        unreachable.add(orders[i].node)
        this.c.logger.warn({ content: contentId, node: orders[i].node, err: describeError(r.reason) }, 'delete order did not go through; node GC will reclaim the blobs')
      }
    })
    this.c.logger.info({ content: contentId, nodes: byNode.size, unreachable: unreachable.size, by }, 'content deleted')
    return { id: contentId, nodes: byNode.size, unreachable: [...unreachable] }
  }
}
