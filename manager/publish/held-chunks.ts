/**
 * Which chunks of a name the pool already holds well enough to count for a
 * new generation: found by tag in the name's lineage, with at least R
 * confirmed copies on live nodes (for whichever content). Each one found
 * gains copy rows for the new upload at once, so that deleting an older
 * generation from then on spares it (a delete removes a blob from a node
 * only when no other content holds it there).
 */
import type { Catalog } from '../catalog/catalog.ts'
import type { LineageStore } from '../catalog/lineage.ts'

export interface HeldChunksComponents {
  catalog: Pick<Catalog, 'countedHolders' | 'addCopy' | 'transaction'>
  lineage: Pick<LineageStore, 'lookup'>
}

export interface HeldChunks {
  /** indexes (into `tags`) the pool does not hold with R copies: they must be sent */
  missing: number[]
  /** the blob of each tag, in order; complete only when nothing is missing */
  cids: string[]
}

export async function adoptHeldChunks (c: HeldChunksComponents, name: string, upload: string, tags: readonly string[], replicas: number): Promise<HeldChunks> {
  const known = await c.lineage.lookup(name, tags)
  const holders = await c.catalog.countedHolders([...known.values()].map(k => k.cid))
  const missing: number[] = []
  const cids: string[] = []
  const adopt = new Map<string, string[]>()
  tags.forEach((tag, i) => {
    const k = known.get(tag)
    const nodes = k == null ? [] : holders.get(k.cid) ?? []
    if (k == null || nodes.length < replicas) {
      missing.push(i)
      return
    }
    cids.push(k.cid)
    adopt.set(k.cid, nodes)
  })
  if (adopt.size > 0) {
    await c.catalog.transaction(async () => {
      for (const [cid, nodes] of adopt) for (const node of nodes) await c.catalog.addCopy(upload, cid, node, 'confirmed')
    })
  }
  return { missing, cids }
}
