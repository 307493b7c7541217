/**
 * The check that closes a generation: once its manifest is on every holder,
 * each holder's have-bitmap must show the chunks the catalog says it holds.
 *
 * A chunk a name already held is counted, not stored again; until the new
 * manifest reaches its holders, only the older generations' manifests keep
 * it there. Should one of those be deleted meanwhile, a holder may drop the
 * chunk (no manifest of its own names it any more) while the catalog still
 * counts the copy. Once the new manifest is stored the chunk is referenced
 * again and safe; so asking each holder then finds every copy lost in that
 * window, and nothing can be lost after it.
 */
import pLimit from 'p-limit'
import { Agent, request } from 'undici'
import { COPY_HEADER, hasChunk, parseHave } from '../../core/data-plane-wire.ts'
import { describeError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { Catalog } from '../catalog/catalog.ts'

/** A holder's have-bitmap of a content, or undefined when the node cannot say (down, slow: no copy is judged lost then). */
export type HaveFetch = (node: string, content: string, chunks: number, signal: AbortSignal) => Promise<Uint8Array | undefined>

export interface HolderCheckComponents {
  catalog: Pick<Catalog, 'copiesOf' | 'removeCopy' | 'countedHolders'>
  have: HaveFetch
  logger: Logger
}

export interface LostCopy { cid: string, node: string }

/** Holders asked at once. */
const CONCURRENCY = 8

/**
 * The confirmed copies of `upload`'s chunks whose holder says, once it holds
 * the manifest of `content`, that it does not have them.
 */
export async function lostCopies (c: HolderCheckComponents, upload: string, content: string, cids: readonly string[], signal: AbortSignal): Promise<LostCopy[]> {
  const indexes = new Map<string, number[]>()
  cids.forEach((cid, i) => { indexes.set(cid, [...indexes.get(cid) ?? [], i]) })
  const byNode = new Map<string, string[]>()
  for (const r of await c.catalog.copiesOf(upload)) {
    if (r.state !== 'confirmed' || !indexes.has(r.cid)) continue
    byNode.set(r.node, [...byNode.get(r.node) ?? [], r.cid])
  }
  const limit = pLimit(CONCURRENCY)
  const lost: LostCopy[] = []
  await Promise.all([...byNode].map(async ([node, held]) => await limit(async () => {
    const bitmap = await c.have(node, content, cids.length, signal)
    if (bitmap == null) return
    for (const cid of held) {
      if (!indexes.get(cid)!.some(i => hasChunk(bitmap, i))) lost.push({ cid, node })
    }
  })))
  if (lost.length > 0) c.logger.warn({ upload, content, lost: lost.length, first: lost[0] }, 'holders lack chunks the catalog counted for them')
  return lost
}

/**
 * Checks the holders of a content just stored (see the module comment):
 * copies found lost leave the catalog, and the blobs now short of
 * `replicas` confirmed copies are returned (none: the content is whole).
 */
export async function checkHolders (c: HolderCheckComponents, upload: string, content: string, cids: readonly string[], replicas: number, signal: AbortSignal): Promise<Set<string>> {
  const lost = await lostCopies(c, upload, content, cids, signal)
  if (lost.length === 0) return new Set()
  for (const l of lost) await c.catalog.removeCopy(l.cid, l.node)
  const affected = [...new Set(lost.map(l => l.cid))]
  const holders = await c.catalog.countedHolders(affected)
  return new Set(affected.filter(cid => (holders.get(cid)?.length ?? 0) < replicas))
}

/**
 * Asks a node's data plane for its have-bitmap (`GET /have/<content>`),
 * marked as the pool's own traffic. Any failure is "cannot say".
 */
export function httpHave (httpOf: (node: string) => Promise<string | undefined>, logger: Logger, timeoutMs = 10_000): { have: HaveFetch, close: () => Promise<void> } {
  const agent = new Agent({ connections: 16 })
  const have: HaveFetch = async (node, content, chunks, signal) => {
    const base = await httpOf(node)
    if (base == null) return undefined
    try {
      const res = await request(`${base.replace(/\/+$/, '')}/have/${content}`, { dispatcher: agent, headers: { [COPY_HEADER]: '1' }, signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) })
      if (res.statusCode !== 200) {
        await res.body.dump()
        return undefined
      }
      return parseHave(await res.body.json(), content, chunks)
    } catch (err) {
      logger.debug({ node, content, err: describeError(err) }, 'a holder did not say what it holds')
      return undefined
    }
  }
  return { have, close: async () => { await agent.close() } }
}
