/**
 * Deleting a content, so that it finishes whatever happens meanwhile.
 *
 * One transaction drops the content's rows and its key, leaves a tombstone,
 * and notes per holder the blobs still to remove there (`pending_deletes`):
 * the content is unlisted and unreadable at once (a copy that survives on a
 * node is ciphertext nobody can open), and the intent is durable before any
 * order goes out. Then every holder is sent a delete order; each order that
 * lands clears its note. Whatever is still noted is finished later, three ways:
 * - a node that missed its order (down, paused, partitioned) is told on its
 *   next heartbeat to drop the content (node-registry.ts);
 * - a heartbeat that no longer lists the content clears the note;
 * - after a manager restart, `resumePending` sends the orders still noted
 *   (a kill -9 between the commit and the orders loses nothing).
 */
import { describeError, UnavailableError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import { withDefaults } from '../../core/with-defaults.ts'
import type { Catalog } from '../catalog/catalog.ts'
import type { ContentLifecycle, DeleteReason, OwedDelete } from '../catalog/content-lifecycle.ts'
import { sendDeletesTo, settledWithLimit } from '../orders/delete-orders.ts'
import type { NodeClient } from '../nodes/node-client.ts'

export interface ContentDeleterComponents {
  catalog: Catalog
  lifecycle: ContentLifecycle
  nodes: NodeClient
  logger: Logger
  /** ms since the epoch (default Date.now) */
  now?: () => number
}

export interface ContentDeleterInit {
  /** ms per delete order (default 30 s) */
  orderTimeoutMs?: number
  /** orders out at once (default 16) */
  concurrency?: number
  /**
   * ms `delete` waits for its orders before it answers (default 10 s). The
   * delete is durable from its first transaction; orders still out then go
   * on in the background, and an unreachable holder is finished by its heartbeat.
   */
  answerWithinMs?: number
}

export interface DeleteOptions {
  signal?: AbortSignal
  /** the event recorded (default `content-deleted`; expiry records `content-expired`) */
  event?: DeleteReason
}

export interface DeleteOutcome {
  id: string
  nodes: number
  /** nodes whose order had not landed when the delete answered */
  unreachable: string[]
}

type Owed = OwedDelete

const DELETER_DEFAULTS: Required<ContentDeleterInit> = { orderTimeoutMs: 30_000, concurrency: 16, answerWithinMs: 10_000 }

export class ContentDeleter {
  private readonly c: ContentDeleterComponents
  private readonly log: Logger
  private readonly now: () => number
  private readonly init: Required<ContentDeleterInit>
  private readonly shutdown = new AbortController()
  /** order rounds still running (also those a delete answered before) */
  private readonly running = new Set<Promise<unknown>>()

  constructor (components: ContentDeleterComponents, init: ContentDeleterInit = {}) {
    this.c = components
    this.log = components.logger
    this.now = components.now ?? Date.now
    this.init = withDefaults(DELETER_DEFAULTS, init)
  }

  async delete (contentId: string, by: string, options: DeleteOptions = {}): Promise<DeleteOutcome> {
    const owed = await this.c.lifecycle.delete(contentId, options.event ?? 'content-deleted', by, this.now())

    const landed = new Set<string>()
    const round = this.track(this.send(owed, landed, options.signal))
    await settledWithin(round, this.init.answerWithinMs, options.signal)
    const unreachable = owed.map(o => o.node).filter(n => !landed.has(n))
    this.log.info({ content: contentId, nodes: owed.length, unreachable: unreachable.length, by }, 'content deleted')
    return { id: contentId, nodes: owed.length, unreachable }
  }

  /**
   * Sends the delete orders a previous run noted but never saw land (run once
   * at start, in the background). Returns how many (content, node) pairs
   * were finished.
   */
  async resumePending (): Promise<number> {
    const owed = await this.c.catalog.pendingDeletes()
    if (owed.length === 0) return 0
    const contents = new Set(owed.map(o => o.content))
    this.log.info({ contents: contents.size, orders: owed.length }, 'resuming deletes a restart interrupted')
    const landed = new Set<string>()
    await this.track(this.send(owed, landed))
    for (const content of contents) {
      const nodes = owed.filter(o => o.content === content)
      const done = nodes.filter(o => landed.has(o.node)).length
      await this.c.catalog.recordEvent({ kind: 'delete-resumed', content, detail: { nodes: nodes.length, done } })
    }
    return owed.filter(o => landed.has(o.node)).length
  }

  /** Resolves once no orders are out (tests, and a clean stop). */
  async idle (): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running])
  }

  /** Stops sending, cancels the orders still out and waits for them to settle; what was noted stays noted. */
  async close (): Promise<void> {
    this.shutdown.abort(new UnavailableError('manager stopping'))
    await this.idle()
  }

  private track<T> (p: Promise<T>): Promise<T> {
    this.running.add(p)
    void p.finally(() => { this.running.delete(p) }).catch(() => {})
    return p
  }

  /** One order per node (batched); a node's note is cleared once all of its orders landed. */
  private async send (owed: Owed[], landed: Set<string>, signal?: AbortSignal): Promise<void> {
    const stop = AbortSignal.any([this.shutdown.signal, ...(signal != null ? [signal] : [])])
    await settledWithLimit(owed, this.init.concurrency, async (o) => {
      try {
        await sendDeletesTo(this.c.nodes, { node: o.node, blobs: o.blobs, contents: [o.content] }, { signal: stop, timeout: this.init.orderTimeoutMs })
      } catch (err) {
        if (!stop.aborted) this.log.warn({ content: o.content, node: o.node, err: describeError(err) }, 'delete order did not go through; the node drops the content on its next heartbeat')
        return
      }
      if (this.shutdown.signal.aborted) return
      await this.c.catalog.clearPendingDelete(o.content, o.node)
      landed.add(o.node)
    })
  }
}

/** Waits for `p` to settle, at most `ms` (a timer that keeps the process alive meanwhile), or until `signal` aborts. */
async function settledWithin (p: Promise<unknown>, ms: number, signal?: AbortSignal): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    await new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
      onAbort = resolve
      signal?.addEventListener('abort', onAbort, { once: true })
      p.then(() => { resolve() }, () => { resolve() })
    })
  } finally {
    clearTimeout(timer)
    if (onAbort != null) signal?.removeEventListener('abort', onAbort)
  }
}
