/**
 * The last step before a content becomes visible: its signed manifest goes
 * to every node holding one of its chunks, with the order to index the
 * content, so each holder can serve and announce what it holds. An empty
 * content has no chunk holders: its manifest is placed on R nodes.
 */
import { describeError, UpstreamError } from '../../core/errors.ts'
import type { SignedManifest } from '../../core/manifest.ts'
import type { Catalog } from '../catalog/catalog.ts'
import type { NodeClient } from '../nodes/node-client.ts'
import { settledWithLimit } from '../orders/delete-orders.ts'
import { sendStore } from '../orders/store-orders.ts'
import { placeBlob, type PlacementCandidate } from '../replication/placement.ts'
import type { Staging } from './staging.ts'

export interface ManifestStoreComponents {
  catalog: Pick<Catalog, 'addCopy' | 'confirmCopy'>
  staging: Pick<Staging, 'put'>
  nodes: NodeClient
  candidates: () => Promise<PlacementCandidate[]>
  /** the URL nodes fetch a staged blob from */
  stagingUrl: (cid: string) => string
}

export interface ManifestDelivery {
  /** the catalog row the copies belong to (the upload id) */
  upload: string
  signed: SignedManifest
  /** nodes holding at least one confirmed chunk copy */
  holders: ReadonlySet<string>
  replicas: number
  signal: AbortSignal
  ordersInFlight: number
  orderTimeoutMs: number
  /** the staged manifest is added here; the caller unstages it */
  staged: Set<string>
}

/** Stores the manifest on every holder; throws unless every one of them confirms. Returns the holders. */
export async function storeManifest (c: ManifestStoreComponents, d: ManifestDelivery): Promise<string[]> {
  const id = d.signed.id.toString()
  let targets = [...d.holders]
  if (targets.length === 0) {
    targets = placeBlob(d.signed.id, await c.candidates(), d.replicas, d.signed.bytes.length).map(n => n.peerId)
  }
  await c.staging.put(id, d.signed.bytes)
  d.staged.add(id)
  for (const node of targets) await c.catalog.addCopy(d.upload, id, node, 'pending')
  const order = { type: 'store' as const, blobs: [{ cid: id, sources: [c.stagingUrl(id)] }], contents: [id] }
  const results = await settledWithLimit(targets, d.ordersInFlight, async (node) => {
    const outcome = await sendStore(c.nodes, node, order, { signal: d.signal, timeout: d.orderTimeoutMs })
    if (!outcome.ok) throw outcome.error
    const r = outcome.results.get(id)
    if (r?.ok !== true) throw new UpstreamError(`node ${node} did not store the manifest: ${r?.error ?? 'no result'}`)
    await c.catalog.confirmCopy(id, node)
  })
  const failed = results.flatMap((r, i) => r.status === 'rejected' ? [{ node: targets[i], err: r.reason }] : [])
  if (failed.length > 0) {
    d.signal.throwIfAborted()
    // A holder without the manifest cannot index or announce its chunks: readers would never find them.
    const first = failed[0]
    throw new UpstreamError(`${failed.length} of ${targets.length} holders did not store the manifest (first: ${describeError(first.err)})`, { cause: first.err })
  }
  return targets
}
