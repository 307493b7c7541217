/**
 * Carries out the replication policy's copies and deletes through the nodes'
 * store and delete orders, and records what happened in the catalog.
 *
 * Actions are grouped per node into orders and queued per node; a node gets
 * one order at a time (so a delete and a later store for the same node can
 * never overtake each other), and at most `ordersInFlight` orders are out in
 * the whole pool. A chunk with an action queued or under way is busy, and
 * the controller plans nothing more for it until the action is over.
 *
 * Copies: the copy row is recorded pending, the target fetches the blob from
 * the holders' data planes (and the manifest from the manager when it does
 * not hold it yet, since a node keeps only chunks a held manifest refers
 * to), and a `stored` result confirms it. Deletes: right before each delete
 * the invariant is checked again against the catalog (the confirmed copies
 * that would remain on live nodes must be at least the minimum) and the
 * delete is refused otherwise, whatever the policy said; then the row goes
 * and the order is sent. When a node holds no chunk of a content any more,
 * its manifest goes too and the node stops providing the content.
 *
 * An order whose outcome is unknown (timeout, node unreachable) leaves its
 * copies `suspect`: they do not count, and the policy deletes them once that
 * is safe, so a half-done move never leaks disk.
 */
import { describeError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { BlobSource, StoreOrder } from '../../core/wire.ts'
import type { Catalog, NodeRow } from '../catalog/catalog.ts'
import type { NodeClient } from '../nodes/node-client.ts'
import { batches, DELETE_BATCH } from '../orders/delete-orders.ts'
import { OrderEngine } from '../orders/order-engine.ts'
import { sendStore } from '../orders/store-orders.ts'
import { groupBy, runDeleteJob, type DeleteJob, type DeleteJobContext } from './delete-job.ts'
import type { CopyAction, DeleteAction } from './replication-policy.ts'

export type ActionOutcome = 'ok' | 'failed' | 'refused' | 'skipped'

export interface ActionRunnerMetrics {
  /** one action finished (kind copy/delete, the policy's reason) */
  onAction: (kind: 'copy' | 'delete', reason: string, outcome: ActionOutcome) => void
  /** bytes a confirmed copy moved */
  onBytesMoved: (reason: string, bytes: number) => void
}

export interface ActionRunnerComponents {
  catalog: Catalog
  nodes: NodeClient
  /** where a node can fetch the manifest of a visible content (the manager serves them) */
  manifestUrl: (contentId: string) => string
  logger: Logger
  metrics?: ActionRunnerMetrics
  /** ms since the epoch, the clock heartbeats are stamped with */
  now?: () => number
  /**
   * Throws unless this manager still runs the controller; read inside the
   * transaction that records an action, so a manager that lost the lease
   * records and sends nothing more (several managers: manager/pool/).
   */
  fence?: () => Promise<void>
}

export interface ActionRunnerInit {
  /** confirmed copies on live nodes that no delete may go below */
  minCopies: number
  /** blobs per order (default 16) */
  blobsPerOrder?: number
  /** orders out at once across the pool (default 8) */
  ordersInFlight?: number
  /** ms per order (default 2 min) */
  orderTimeoutMs?: number
}

interface CopyJob { kind: 'copy', node: string, actions: CopyAction[] }
type Job = CopyJob | DeleteJob

interface UsageChange { at: number, bytes: number }

/** Disk-use changes older than this are surely in the nodes' own reports. */
const USAGE_MEMORY_MS = 10 * 60_000

export class ActionRunner {
  private readonly c: ActionRunnerComponents
  private readonly log: Logger
  private readonly now: () => number
  private readonly minCopies: number
  private readonly blobsPerOrder: number
  private readonly orderTimeoutMs: number
  /** replication's policy: one order at a time per node, the node waiting longest first */
  private readonly orders: OrderEngine<Job>
  private readonly deleteContext: DeleteJobContext
  private readonly shutdown = new AbortController()
  /** cid → actions queued or under way on it */
  private readonly busy = new Map<string, number>()
  /** node → bytes of copies queued or under way to it */
  private readonly arriving = new Map<string, number>()
  /** node → disk-use changes of finished actions, oldest first */
  private readonly changes = new Map<string, UsageChange[]>()

  constructor (components: ActionRunnerComponents, init: ActionRunnerInit) {
    this.c = components
    this.log = components.logger
    this.now = components.now ?? Date.now
    this.minCopies = init.minCopies
    this.blobsPerOrder = Math.max(1, init.blobsPerOrder ?? 16)
    this.orderTimeoutMs = init.orderTimeoutMs ?? 120_000
    const signal = this.shutdown.signal
    this.orders = new OrderEngine<Job>({
      maxInFlight: Math.max(1, init.ordersInFlight ?? 8),
      perNode: 1,
      // A job is one order already (deletes and copies are cut apart in submit).
      batchSize: 1,
      pick: 'oldest',
      canSend: () => !signal.aborted,
      send: async (_node, [job]) => { await this.run(job, signal) },
      // Only the catalog can throw here; the next round sees what is recorded and plans again.
      onError: (node, [job], err) => {
        if (!signal.aborted) this.log.error({ node, kind: job.kind, actions: job.actions.length, err: describeError(err) }, 'replication order could not be carried out')
      },
      onSettled: (_node, [job]) => { this.release(job) }
    })
    this.deleteContext = { c: components, log: this.log, minCopies: this.minCopies, orderTimeoutMs: this.orderTimeoutMs, recordUsage: (node, bytes) => { this.recordUsage(node, bytes) } }
  }

  isBusy (cid: string): boolean {
    return this.busy.has(cid)
  }

  /** Actions queued or under way. */
  get pending (): number {
    let n = 0
    for (const count of this.busy.values()) n += count
    return n
  }

  /** Bytes a node gained or freed through actions finished after `since` (ms since the epoch), plus copies still on their way to it. */
  usageChange (node: string, since: number): number {
    let sum = this.arriving.get(node) ?? 0
    for (const c of this.changes.get(node) ?? []) if (c.at > since) sum += c.bytes
    return sum
  }

  /** Queues the round's copies and deletes; returns at once. */
  submit (actions: Array<CopyAction | DeleteAction>): void {
    if (this.shutdown.signal.aborted) return
    const copies = new Map<string, CopyAction[]>()
    const deletes = new Map<string, DeleteAction[]>()
    for (const a of actions) {
      if (a.kind === 'copy') push(copies, a.to, a)
      else push(deletes, a.node, a)
    }
    // Deletes first: they free room and cost no egress.
    for (const [node, list] of deletes) for (const batch of batches(list, DELETE_BATCH)) this.enqueue({ kind: 'delete', node, actions: batch })
    for (const [node, list] of copies) for (const batch of batches(list, this.blobsPerOrder)) this.enqueue({ kind: 'copy', node, actions: batch })
  }

  /** Resolves once nothing is queued or under way (tests, and a clean stop). */
  async idle (): Promise<void> {
    await this.orders.settled()
  }

  /** Stops sending orders, abandons what is queued and waits for the orders out to answer or time out. */
  async close (): Promise<void> {
    this.shutdown.abort(new Error('replication stopping'))
    for (const [, jobs] of this.orders.drop()) for (const job of jobs) this.release(job)
    await this.idle()
  }

  private enqueue (job: Job): void {
    for (const a of job.actions) this.busy.set(a.cid, (this.busy.get(a.cid) ?? 0) + 1)
    if (job.kind === 'copy') this.arriving.set(job.node, (this.arriving.get(job.node) ?? 0) + job.actions.reduce((s, a) => s + a.size, 0))
    this.orders.enqueue(job.node, job)
    this.orders.fill()
  }

  private release (job: Job): void {
    for (const a of job.actions) {
      const n = (this.busy.get(a.cid) ?? 1) - 1
      if (n <= 0) this.busy.delete(a.cid)
      else this.busy.set(a.cid, n)
    }
    if (job.kind === 'copy') {
      const left = (this.arriving.get(job.node) ?? 0) - job.actions.reduce((s, a) => s + a.size, 0)
      if (left <= 0) this.arriving.delete(job.node)
      else this.arriving.set(job.node, left)
    }
  }

  private async run (job: Job, signal: AbortSignal): Promise<void> {
    // Orders start after submit() has returned, as the controller expects.
    await Promise.resolve()
    // A stop while the job waited for its turn abandons it.
    if (signal.aborted) return
    if (job.kind === 'copy') await this.runCopies(job, signal)
    else await runDeleteJob(this.deleteContext, job, signal)
  }

  private recordUsage (node: string, bytes: number): void {
    if (bytes === 0) return
    const now = this.now()
    const list = (this.changes.get(node) ?? []).filter(c => now - c.at < USAGE_MEMORY_MS)
    list.push({ at: now, bytes })
    this.changes.set(node, list)
  }

  // ---- copies -----------------------------------------------------------

  private async runCopies (job: CopyJob, signal: AbortSignal): Promise<void> {
    const { catalog } = this.c
    const target = job.node
    const nodes = new Map((await catalog.listNodes()).map(n => [n.peerId, n]))
    const to = nodes.get(target)
    if (to == null || to.state !== 'alive') {
      for (const a of job.actions) this.c.metrics?.onAction('copy', a.reason, 'skipped')
      this.log.info({ node: target, state: to?.state ?? 'unknown', copies: job.actions.length }, 'copy target no longer takes copies; the next round places them elsewhere')
      return
    }

    // ---- record what is ordered (pending), and build the order ----------
    const sent: CopyAction[] = []
    const manifests = new Set<string>()
    const order: StoreOrder = { type: 'store', blobs: [], contents: [] }
    const skipped: CopyAction[] = []
    const adopted: CopyAction[] = []
    await catalog.transaction(async () => {
      await this.c.fence?.()
      // A transaction may run again (PostgreSQL, on a conflict): it starts from nothing each time.
      sent.length = 0
      skipped.length = 0
      adopted.length = 0
      manifests.clear()
      order.blobs = []
      for (const a of job.actions) {
        const own = await catalog.copyStateFor(a.content, a.cid, target)
        if (await catalog.getVisible(a.content) == null || own === 'confirmed' || own === 'pending') {
          skipped.push(a)
          continue
        }
        // The target already holds this blob for another content (a chunk two generations share): it counts here too, and nothing moves.
        if (await catalog.copyState(a.cid, target) === 'confirmed') {
          await catalog.addCopy(a.content, a.cid, target, 'confirmed')
          adopted.push(a)
          continue
        }
        const sources = sourcesOf(a, nodes)
        if (sources.length === 0) {
          skipped.push(a)
          continue
        }
        await catalog.addCopy(a.content, a.cid, target, 'pending')
        order.blobs.push({ cid: a.cid, sources })
        sent.push(a)
        const manifestState = await catalog.copyState(a.content, target)
        if (a.cid === a.content) manifests.add(a.content)
        else if (manifestState !== 'confirmed' && manifestState !== 'pending' && !manifests.has(a.content)) {
          await catalog.addCopy(a.content, a.content, target, 'pending')
          order.blobs.push(manifestSource(a.content, this.c.manifestUrl(a.content)))
          manifests.add(a.content)
        }
      }
    })
    for (const a of skipped) this.c.metrics?.onAction('copy', a.reason, 'skipped')
    for (const a of adopted) this.c.metrics?.onAction('copy', a.reason, 'ok')
    if (sent.length === 0) return
    order.contents = [...manifests]

    // ---- send ---------------------------------------------------------------
    const outcome = await sendStore(this.c.nodes, target, order, { signal, timeout: this.orderTimeoutMs })
    if (!outcome.ok) {
      await this.copyOrderFailed(target, sent, manifests, outcome.error, signal)
      return
    }
    const results = outcome.results

    // ---- record the outcome ---------------------------------------------
    const vanished = new Set<string>()
    const done: CopyAction[] = []
    const failed: Array<{ action: CopyAction, error: string }> = []
    let added = 0
    await catalog.transaction(async () => {
      vanished.clear()
      done.length = 0
      failed.length = 0
      added = 0
      const indexed = new Map<string, boolean>()
      for (const content of manifests) {
        if (await catalog.getVisible(content) == null) {
          vanished.add(content)
          continue
        }
        const r = results.get(content)
        const ok = r?.ok === true
        indexed.set(content, ok)
        if (ok) {
          await catalog.confirmCopy(content, target)
          added += await catalog.blobSize(content, content)
        } else if (!sent.some(a => a.content === content && a.cid !== content && results.get(a.cid)?.ok === true)) {
          await catalog.removeCopy(content, target)
        } else {
          // Chunks arrived but the content was not indexed: the copies exist and cannot be served well.
          await catalog.addCopy(content, content, target, 'suspect')
        }
      }
      for (const a of sent) {
        if (vanished.has(a.content) || await catalog.getVisible(a.content) == null) {
          vanished.add(a.content)
          continue
        }
        if (a.cid === a.content) {
          if (indexed.get(a.content) === true) done.push(a)
          else failed.push({ action: a, error: results.get(a.cid)?.error ?? 'no result' })
          continue
        }
        const r = results.get(a.cid)
        if (r?.ok !== true) {
          await catalog.removeCopy(a.cid, target)
          failed.push({ action: a, error: r?.error ?? 'no result' })
        } else if (indexed.get(a.content) === false) {
          await catalog.addCopy(a.content, a.cid, target, 'suspect')
          failed.push({ action: a, error: results.get(a.content)?.error ?? 'content not indexed' })
        } else {
          await catalog.confirmCopy(a.cid, target)
          added += a.size
          done.push(a)
        }
      }
      await this.recordCopyEvents(target, done, failed)
    })
    this.recordUsage(target, added)
    for (const a of done) {
      this.c.metrics?.onAction('copy', a.reason, 'ok')
      this.c.metrics?.onBytesMoved(a.reason, a.size)
    }
    for (const f of failed) this.c.metrics?.onAction('copy', f.action.reason, 'failed')
    if (failed.length > 0) this.log.warn({ node: target, failed: failed.length, of: sent.length, err: failed[0].error }, 'node did not store some copies; the next round tries again')
    if (done.length > 0) this.log.info({ node: target, copies: done.length, reasons: [...new Set(done.map(a => a.reason))] }, 'copies added')
    if (vanished.size > 0) await this.removeStrays(target, sent.filter(a => vanished.has(a.content)), vanished, signal)
  }

  private async copyOrderFailed (target: string, sent: CopyAction[], manifests: Set<string>, err: unknown, signal: AbortSignal): Promise<void> {
    const { catalog } = this.c
    for (const a of sent) this.c.metrics?.onAction('copy', a.reason, 'failed')
    if (signal.aborted) {
      // Stopping: the rows stay pending, and the next start turns them suspect.
      this.log.info({ node: target, copies: sent.length }, 'copy order abandoned: manager stopping')
      return
    }
    // The node may have stored some blobs before the order failed: nobody knows, so they are suspect.
    const copies = [...sent, ...[...manifests].map(content => ({ content, cid: content }))]
    const reasons = [...new Set(sent.map(a => a.reason))]
    await catalog.suspectOrderedCopies(target, copies, { kind: 'copy-failed', node: target, detail: { reasons, copies: sent.length, error: describeError(err).slice(0, 300) } })
    this.log.warn({ node: target, copies: sent.length, err: describeError(err) }, 'copy order failed; its copies are suspect until cleaned up')
  }

  /** A content deleted while its copies travelled: what arrived must not stay. */
  private async removeStrays (target: string, actions: CopyAction[], contents: Set<string>, signal: AbortSignal): Promise<void> {
    const blobs = [...new Set([...actions.map(a => a.cid), ...contents])]
    try {
      await this.c.nodes.delete(target, { type: 'delete', blobs, contents: [...contents] }, { signal, timeout: this.orderTimeoutMs })
      this.log.info({ node: target, blobs: blobs.length }, 'removed copies of contents deleted while they were copied')
    } catch (err) {
      this.log.warn({ node: target, blobs: blobs.length, err: describeError(err) }, 'could not remove copies of a deleted content; the node\'s GC will reclaim them')
    }
  }

  private async recordCopyEvents (target: string, done: CopyAction[], failed: Array<{ action: CopyAction, error: string }>): Promise<void> {
    for (const [key, list] of groupBy(done, a => `${a.content}\u0000${a.reason}`)) {
      const [content, reason] = key.split('\u0000')
      const from = [...new Set(list.flatMap(a => a.from.slice(0, 1)))]
      await this.c.catalog.recordEvent({ kind: 'copies-added', content, node: target, detail: { reason, chunks: list.length, bytes: list.reduce((s, a) => s + a.size, 0), from } })
    }
    for (const [key, list] of groupBy(failed, f => `${f.action.content}\u0000${f.action.reason}`)) {
      const [content, reason] = key.split('\u0000')
      await this.c.catalog.recordEvent({ kind: 'copy-failed'
, content, node: target, detail: { reason, chunks: list.length, error: list[0].error.slice(0, 300) } })
    }
  }
}

function push<K, V> (map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key)
  if (list == null) map.set(key, [value])
  else list.push(value)
}

/** Data-plane URLs of the holders a copy may be fetched from, in the policy's order of preference. */
function sourcesOf (a: CopyAction, nodes: Map<string, NodeRow>): string[] {
  const out: string[] = []
  for (const p of a.from) {
    const n = nodes.get(p)
    if (n == null || n.state === 'dead') continue
    out.push(`${n.http.replace(/\/+$/, '')}/chunk/${a.cid}`)
  }
  return out
}

function manifestSource (content: string, url: string): BlobSource {
  return { cid: content, sources: [url] }
}

