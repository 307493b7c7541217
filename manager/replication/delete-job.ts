/**
 * A delete job of the replication controller: the catalog drops the copies
 * first (never below the minimum of counted copies), then one delete order
 * goes to the node; a failed order leaves the copies recorded as suspect.
 */
import { describeError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { Catalog } from '../catalog/catalog.ts'
import type { NodeClient } from '../nodes/node-client.ts'
import type { ActionRunnerMetrics } from './action-runner.ts'
import type { DeleteAction } from './replication-policy.ts'

export interface DeleteJob { kind: 'delete', node: string, actions: DeleteAction[] }

export interface DeleteJobContext {
  c: { catalog: Catalog, nodes: NodeClient, metrics?: ActionRunnerMetrics, fence?: () => Promise<void> }
  log: Logger
  /** confirmed copies on live nodes that no delete may go below */
  minCopies: number
  orderTimeoutMs: number
  /** notes bytes a node gained (+) or freed (-) */
  recordUsage: (node: string, bytes: number) => void
}

export async function runDeleteJob (ctx: DeleteJobContext, job: DeleteJob, signal: AbortSignal): Promise<void> {
  const { catalog } = ctx.c
  const node = job.node
  const removed: Array<{ action: DeleteAction, state: string, size: number }> = []
  const manifests: Array<{ content: string, state: string, size: number }> = []
  const refused: Array<{ action: DeleteAction, others: number }> = []
  const blobs: string[] = []
  const contents = new Set<string>()
  const skipped: DeleteAction[] = []
  const released: DeleteAction[] = []
  await catalog.transaction(async () => {
    await ctx.c.fence?.()
    // A transaction may run again (PostgreSQL, on a conflict): it starts from nothing each time.
    for (const list of [removed, manifests, refused, blobs, skipped, released]) list.length = 0
    contents.clear()
    for (const a of job.actions) {
      const state = await catalog.copyState(a.cid, node)
      if (state == null || await catalog.getVisible(a.content) == null) {
        skipped.push(a)
        continue
      }
      // A trimmed chunk another content still holds here stays on the node: this content just stops counting it.
      if (a.reason === 'trim' && await catalog.heldForOthers(a.content, a.cid, node)) {
        await catalog.removeCopyFor(a.content, a.cid, node)
        released.push(a)
        continue
      }
      // Defence in depth: whatever the policy decided, never below the minimum.
      const others = await catalog.healthyCopiesExcept(a.cid, node)
      if (others < ctx.minCopies) {
        refused.push({ action: a, others })
        continue
      }
      await catalog.removeCopy(a.cid, node)
      blobs.push(a.cid)
      removed.push({ action: a, state, size: await catalog.blobSize(a.content, a.cid) })
      if (a.cid === a.content) contents.add(a.content)
    }
    for (const content of new Set(removed.map(r => r.action.content))) {
      if (contents.has(content) || await catalog.nodeHoldsChunksOf(content, node)) continue
      const state = await catalog.copyState(content, node)
      if (state == null) continue
      // Nothing of this content is left here: its manifest goes too, and the node stops providing it.
      await catalog.removeCopy(content, node)
      blobs.push(content)
      contents.add(content)
      manifests.push({ content, state, size: await catalog.blobSize(content, content) })
    }
    for (const r of refused) {
      await catalog.recordEvent({ kind: 'delete-refused', content: r.action.content, node, detail: { reason: r.action.reason, chunk: r.action.cid, others: r.others, minCopies: ctx.minCopies } })
    }
  })
  for (const a of skipped) ctx.c.metrics?.onAction('delete', a.reason, 'skipped')
  for (const a of released) ctx.c.metrics?.onAction('delete', a.reason, 'ok')
  for (const r of refused) {
    ctx.c.metrics?.onAction('delete', r.action.reason, 'refused')
    ctx.log.warn({ node, chunk: r.action.cid, reason: r.action.reason, others: r.others, minCopies: ctx.minCopies }, 'delete refused: too few other confirmed copies')
  }
  if (blobs.length === 0) return

  try {
    await ctx.c.nodes.delete(node, { type: 'delete', blobs, contents: [...contents] }, { signal, timeout: ctx.orderTimeoutMs })
  } catch (err) {
    for (const r of removed) ctx.c.metrics?.onAction('delete', r.action.reason, 'failed')
    // The blobs may still be there: they are kept as suspect copies, so the policy tries again once it is safe.
    await catalog.transaction(async () => {
      for (const r of removed) if (await catalog.getVisible(r.action.content) != null) await catalog.addCopy(r.action.content, r.action.cid, node, 'suspect')
      for (const m of manifests) if (await catalog.getVisible(m.content) != null) await catalog.addCopy(m.content, m.content, node, 'suspect')
    })
    if (!signal.aborted) ctx.log.warn({ node, blobs: blobs.length, err: describeError(err) }, 'delete order failed; the copies stay recorded as suspect')
    return
  }
  ctx.recordUsage(node, -(removed.reduce((s, r) => s + r.size, 0) + manifests.reduce((s, m) => s + m.size, 0)))
  for (const r of removed) ctx.c.metrics?.onAction('delete', r.action.reason, 'ok')
  await catalog.transaction(async () => {
    for (const [key, list] of groupBy(removed, r => `${r.action.content}\u0000${r.action.reason}`)) {
      const [content, reason] = key.split('\u0000')
      await catalog.recordEvent(
{ kind: 'copies-removed', content, node, detail: { reason, chunks: list.length, bytes: list.reduce((s, r) => s + r.size, 0), manifest: manifests.some(m => m.content === content) } })
    }
  })
  ctx.log.info({ node, blobs: blobs.length, contents: contents.size, reasons: [...new Set(removed.map(r => r.action.reason))] }, 'copies removed')
}

export function groupBy<T> (items: T[], key: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>()
  for (const item of items) {
    const k = key(item)
    const list = out.get(k)
    if (list == null) out.set(k, [item])
    else list.push(item)
  }
  return out
}
