/**
 * Store orders: one order to one node, its outcome as a value. Every path that
 * sends copies (an upload's dispatcher, the replication runner, a manifest's
 * holders) records per blob what the node answered, or the whole order as
 * failed; none lets a failed order throw past its bookkeeping.
 */
import type { StoreOrder, StoreResult } from '../../core/wire.ts'
import type { NodeClient } from '../nodes/node-client.ts'

export type StoreOutcome =
  | { ok: true, results: Map<string, StoreResult> }
  | { ok: false, error: unknown }

export async function sendStore (nodes: Pick<NodeClient, 'store'>, node: string, order: StoreOrder, o: { signal: AbortSignal, timeout: number }): Promise<StoreOutcome> {
  try {
    const stored = await nodes.store(node, order, { signal: o.signal, timeout: o.timeout })
    return { ok: true, results: new Map(stored.results.map(r => [r.cid, r])) }
  } catch (error) {
    return { ok: false, error }
  }
}
