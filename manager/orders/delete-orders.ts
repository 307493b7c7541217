/**
 * Delete orders, the one way the manager sends them in bulk: a node's blobs
 * go out in orders of at most DELETE_BATCH (a node's order reader has a size
 * limit), one node's orders in sequence, at most `limit` nodes at once, and
 * every node's outcome is reported apart, so one failing node never hides
 * the others.
 */
import pLimit from 'p-limit'
import type { NodeClient } from '../nodes/node-client.ts'

/** Blobs per delete order (docs/PROTOCOLS.md: a node reads orders up to its size limit). */
export const DELETE_BATCH = 4096

export interface DeleteRequest {
  node: string
  blobs: readonly string[]
  /** contents the node stops providing */
  contents: string[]
}

export interface DeleteSendOptions {
  /** nodes sent to at once */
  limit: number
  signal: AbortSignal
  /** ms per order */
  timeout: number
}

/** Sends each request's orders; settles like Promise.allSettled, in the order of `requests`. */
export async function sendDeletes (nodes: Pick<NodeClient, 'delete'>, requests: readonly DeleteRequest[], o: DeleteSendOptions): Promise<Array<PromiseSettledResult<void>>> {
  return await settledWithLimit(requests, o.limit, async r => { await sendDeletesTo(nodes, r, o) })
}

/** One node's orders, in sequence; throws the first failure. */
export async function sendDeletesTo (nodes: Pick<NodeClient, 'delete'>, r: DeleteRequest, o: Omit<DeleteSendOptions, 'limit'>): Promise<void> {
  for (const blobs of batches(r.blobs, DELETE_BATCH)) {
    o.signal.throwIfAborted()
    await nodes.delete(r.node, { type: 'delete', blobs, contents: r.contents }, { signal: o.signal, timeout: o.timeout })
  }
}

/** Runs `fn` over `items` with at most `limit` calls in flight, settling each apart. */
export async function settledWithLimit<T, R> (items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<Array<PromiseSettledResult<R>>> {
  const run = pLimit(Math.max(1, limit))
  return await Promise.allSettled(items.map(async item => await run(fn, item)))
}

/** `list` cut into slices of at most `size`. */
export function batches<T> (list: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size))
  return out
}
