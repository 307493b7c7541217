/**
 * Delete orders, the one way the manager sends them in bulk: a node's blobs
 * go out in orders of at most DELETE_BATCH (a node's order reader has a size
 * limit), one node's orders in sequence, at most `limit` nodes at once, and
 * every node's outcome is reported apart, so one failing node never hides
 * the others.
 */
import type { NodeClient } from '../nodes/node-client.ts'
import { OrderEngine } from './order-engine.ts'

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

/**
 * Runs `fn` over `items` with at most `limit` calls in flight, settling each
 * apart, through the order engine (each item its own queue, first come first
 * served).
 */
export async function settledWithLimit<T, R> (items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<Array<PromiseSettledResult<R>>> {
  const results = new Array<PromiseSettledResult<R>>(items.length)
  const engine = new OrderEngine<number>({
    maxInFlight: Math.max(1, limit),
    perNode: 1,
    batchSize: 1,
    pick: 'oldest',
    canSend: () => true,
    send: async (_key, [i]) => {
      try {
        results[i] = { status: 'fulfilled', value: await fn(items[i]) }
      } catch (reason) {
        results[i] = { status: 'rejected', reason }
      }
    }
  })
  for (let i = 0; i < items.length; i++) engine.enqueue(String(i), i)
  engine.fill()
  await engine.settled()
  return results
}

/** `list` cut into slices of at most `size`. */
export function batches<T> (list: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size))
  return out
}
