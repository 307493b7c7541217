/**
 * The replication controller's brain: a pure function from what the pool
 * looks like now (nodes, contents, their confirmed copies and demand) to the
 * actions that bring it closer to what it should be. No I/O and no clock of
 * its own, so the manager, the unit tests and the large-scale simulator run
 * exactly the same decisions.
 *
 * Safety does not depend on the executor being quick or lucky: the policy
 * only ever deletes a copy when enough *other* confirmed healthy copies exist
 * already, so "copy, confirm, then delete" falls out of running it again
 * after the copy was confirmed.
 */
import { CID } from 'multiformats/cid'
import { CapacityError } from '../../core/errors.ts'
import { placeBlob, type PlacementCandidate } from './placement.ts'
import { type CopyAction, type CopyReason, type DeleteAction, type PolicyAction, type PolicyChunk, type PolicyContent, type PolicyInput, type PolicyNode, type PolicyReport, type PolicySettings } from './policy-types.ts'

export * from './policy-types.ts'


const PRIORITY: Record<CopyReason, number> = { repair: 0, 'bad-copy': 1, drain: 2, migrate: 3, mirror: 4 }

/** Copies a content should have: demand against the egress one of its holders can give, within a hysteresis band. */
export function wantedCopies (content: PolicyContent, present: number, perHolderEgress: number, s: PolicySettings): number {
  const base = Math.max(content.base, s.minCopies)
  const up = Math.ceil(content.demand / (s.mirrorUtilization * perHolderEgress))
  const down = Math.ceil(content.demand / (s.trimUtilization * perHolderEgress))
  let target = present
  if (present < up) target = up
  else if (present > down) target = down
  return Math.min(Math.max(target, base), Math.max(s.maxCopies, base))
}

interface NodeView extends PolicyNode {
  planned: number
  /** disk bytes this node should shed to get back under its low-water mark */
  shedDisk: number
  /** the chunks chosen to leave it for that */
  shedChunks: Set<string>
  /** content id this node is overloaded by (egress), if any */
  shedContent?: string
}

function isCapped (n: PolicyNode): boolean {
  return Number.isFinite(n.egressCap) && n.egressCap > 0
}

function buildNodeViews (input: PolicyInput, busiest: Map<string, string>): Map<string, NodeView> {
  const s = input.settings
  const views = new Map<string, NodeView>()
  for (const n of input.nodes) {
    const overDisk = n.capacity > 0 && n.used > s.diskHighWater * n.capacity
    const overEgress = isCapped(n) && n.egressRate > s.egressHighWater * n.egressCap
    views.set(n.peerId, {
      ...n,
      planned: 0,
      shedDisk: overDisk ? n.used - s.diskLowWater * n.capacity : 0,
      shedChunks: new Set(),
      shedContent: overEgress ? busiest.get(n.peerId) : undefined
    })
  }
  return views
}

function egressOf (n: PolicyNode, s: PolicySettings): number {
  return isCapped(n) ? n.egressCap : s.uncappedEgress
}

function meanEgress (nodes: PolicyNode[], s: PolicySettings): number {
  const alive = nodes.filter(n => n.state === 'alive')
  if (alive.length === 0) return s.uncappedEgress
  return alive.reduce((sum, n) => sum + egressOf(n, s), 0) / alive.length
}

/** What one holder of this content can serve on average: its demand is measured against its own holders, not the pool. */
function holderEgress (content: PolicyContent, views: Map<string, NodeView>, s: PolicySettings, fallback: number): number {
  const holders = new Set<string>()
  for (const ch of content.chunks) for (const p of healthy(ch, views)) holders.add(p)
  if (holders.size === 0) return fallback
  let sum = 0
  for (const p of holders) sum += egressOf(views.get(p)!, s)
  return sum / holders.size
}

/** For each node, the content with the most demand among those it holds: what to spread when it is hot. */
function busiestContentPerNode (contents: PolicyContent[]): Map<string, string> {
  const best = new Map<string, { id: string, demand: number }>()
  for (const c of contents) {
    if (c.demand <= 0) continue
    for (const ch of c.chunks) {
      for (const h of ch.holders) {
        const b = best.get(h)
        if (b == null || b.demand < c.demand) best.set(h, { id: c.id, demand: c.demand })
      }
    }
  }
  return new Map([...best].map(([k, v]) => [k, v.id]))
}

interface ChunkPlan { content: PolicyContent, chunk: PolicyChunk, target: number }

/**
 * Decides one reconcile round. Copies are ordered by urgency (repairs of the
 * most endangered chunks first) and cut off at the move budget; deletions
 * cost no egress and are planned only where the remaining healthy copies
 * still meet both the content's target and the global minimum.
 */
export function reconcile (input: PolicyInput): PolicyReport {
  const s = input.settings
  const views = buildNodeViews(input, busiestContentPerNode(input.contents))
  const nodeList = [...views.values()]
  const perHolder = meanEgress(input.nodes, s)
  const actions: PolicyAction[] = []
  const wanted = new Map<string, number>()
  const copies: Array<{ action: CopyAction, urgency: number, content: PolicyContent, chunk: PolicyChunk }> = []
  let underReplicated = 0
  let deferred = 0

  const plans: ChunkPlan[] = []
  const shedding = [...views.values()].filter(n => n.shedDisk > 0)
  for (const content of input.contents) {
    if (content.expiresAt != null && content.expiresAt <= input.now) {
      actions.push({ kind: 'expire', content: content.id })
      continue
    }
    const present = Math.min(...content.chunks.map(ch => healthy(ch, views).length), Infinity)
    let target = wantedCopies(content, Number.isFinite(present) ? present : content.base, holderEgress(content, views, s, perHolder), s)
    if (allHoldersHot(content, views)) {
      // Every holder is saturated by it: moving copies around cannot help, one more copy can.
      target = Math.min(target + 1, Math.max(s.maxCopies, content.base))
      for (const n of views.values()) if (n.shedContent === content.id) n.shedContent = undefined
    }
    wanted.set(content.id, target)
    for (const chunk of content.chunks) plans.push({ content, chunk, target })
  }
  chooseChunksToShed(plans, shedding)

  for (const { content, chunk, target } of plans) {
    const good = healthy(chunk, views)
    const staying = good.filter(p => !isLeaving(views.get(p)!, content.id, chunk.cid))
    if (good.length < Math.max(content.base, s.minCopies)) underReplicated++
    if (chunk.busy === true) continue
    // Copies being replaced still count against the ceiling: at most one move in flight above it.
    const ceiling = Math.max(s.maxCopies, content.base) + 1
    const missing = Math.min(target - staying.length, ceiling - good.length)
    if (missing > 0) {
      const reason = copyReason(chunk, good, staying, content, views)
      for (let i = 0; i < missing; i++) {
        copies.push({
          action: { kind: 'copy', reason, content: content.id, cid: chunk.cid, size: chunk.size, from: readable(chunk, views, content.id), to: '' },
          urgency: PRIORITY[reason] * 1000 + good.length,
          content,
          chunk
        })
      }
    }
    actions.push(...planDeletes(content, chunk, good, staying, target, views, s))
  }

  // Most endangered first; then fill the budget.
  copies.sort((a, b) => a.urgency - b.urgency)
  let budget = s.moveBudget
  const placedFor = new Map<string, string[]>()
  for (const c of copies) {
    if (c.action.from.length === 0) { deferred++; continue }
    if (c.chunk.size > budget) { deferred++; continue }
    const already = placedFor.get(c.chunk.cid) ?? []
    const to = chooseTarget(c.chunk, already, views, nodeList, s, c.action.reason === 'mirror')
    if (to == null) { deferred++; continue }
    already.push(to.peerId)
    placedFor.set(c.chunk.cid, already)
    to.planned += c.chunk.size
    budget -= c.chunk.size
    actions.push({ ...c.action, to: to.peerId })
  }
  return { actions, wanted, underReplicated, deferred }
}

/** True when each live holder of the content's first chunk is above its egress mark because of this content. */
function allHoldersHot (content: PolicyContent, views: Map<string, NodeView>): boolean {
  const first = content.chunks[0]
  if (first == null) return false
  const live = healthy(first, views)
  return live.length > 0 && live.every(p => views.get(p)!.shedContent === content.id)
}

/**
 * Copies that count: on a live (alive or draining) node and not suspect. The
 * catalog states the same rule once, as its `counted_copies` view, for every
 * check made outside the policy (deletes, node removal, health); a suspect
 * copy never counts toward the minimum, so it is never what makes another copy spare.
 */
function healthy (chunk: PolicyChunk, views: Map<string, NodeView>): string[] {
  const bad = new Set(chunk.bad ?? [])
  return chunk.holders.filter(p => {
    const n = views.get(p)
    return n != null && n.state !== 'dead' && !bad.has(p)
  })
}

/**
 * Holders a new copy can be fetched from, best first: nodes staying in the
 * pool before those on their way out (a draining or overloaded node should
 * not pay for its own relief when another holder can), then the least busy.
 */
function readable (chunk: PolicyChunk, views: Map<string, NodeView>, content: string): string[] {
  const rank = (p: string): number => {
    const n = views.get(p)!
    const load = isCapped(n) ? n.egressRate / n.egressCap : 0
    return (isLeaving(n, content, chunk.cid) ? 1 : 0) * 1e6 + load
  }
  return healthy(chunk, views).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0))
}

/** A copy on a node that is draining, chosen to relieve its full disk, or on a node hot with this very content is on its way out. */
function isLeaving (n: NodeView, content: string, cid: string): boolean {
  return n.state === 'draining' || n.shedChunks.has(cid) || n.shedContent === content
}

/**
 * Picks, for each node above its disk mark, just enough of its chunks to
 * bring it back under the low-water mark. A chunk leaves one node at a time:
 * when every holder of a chunk is full and all shed the same chunks, none of
 * them could ever go (each would wait for the others' copies to be replaced).
 * The choice is deterministic, so the next round, which sees the new copies
 * confirmed, picks the same chunks and deletes their old copies.
 */
function chooseChunksToShed (plans: ChunkPlan[], shedding: NodeView[]): void {
  if (shedding.length === 0) return
  const left = new Map(shedding.map(n => [n.peerId, n.shedDisk]))
  const byId = new Map(shedding.map(n => [n.peerId, n]))
  for (const { chunk } of plans) {
    for (const p of chunk.holders) {
      const rest = left.get(p)
      if (rest == null || rest <= 0) continue
      if ((chunk.bad ?? []).includes(p)) continue
      byId.get(p)!.shedChunks.add(chunk.cid)
      left.set(p, rest - chunk.size)
      break
    }
  }
}

function copyReason (chunk: PolicyChunk, good: string[], staying: string[], content: PolicyContent, views: Map<string, NodeView>): CopyReason {
  const base = content.base
  const lost = chunk.holders.some(p => views.get(p)?.state === 'dead' || views.get(p) == null)
  const badCopies = (chunk.bad ?? []).length > 0
  if (good.length < base && lost) return 'repair'
  if (good.length < base && badCopies) return 'bad-copy'
  if (staying.length < good.length) {
    return good.some(p => views.get(p)!.state === 'draining') ? 'drain' : 'migrate'
  }
  if (good.length < base) return 'repair'
  return 'mirror'
}

function planDeletes (content: PolicyContent, chunk: PolicyChunk, good: string[], staying: string[], target: number, views: Map<string, NodeView>, s: PolicySettings): DeleteAction[] {
  const out: DeleteAction[] = []
  const floor = Math.max(s.minCopies, Math.min(target, content.base))
  // Bad copies go as soon as enough good ones exist without them.
  for (const p of chunk.bad ?? []) {
    if (chunk.holders.includes(p) && views.get(p)?.state !== 'dead' && good.length >= floor) {
      out.push({ kind: 'delete', reason: 'bad-copy', content: content.id, cid: chunk.cid, node: p })
    }
  }
  // Copies on leaving nodes go once the staying copies alone meet the target.
  let remaining = good.length
  for (const p of good) {
    const n = views.get(p)!
    if (staying.includes(p)) continue
    if (staying.length >= Math.max(target, floor) && remaining - 1 >= floor) {
      out.push({ kind: 'delete', reason: n.state === 'draining' ? 'drain' : 'migrate', content: content.id, cid: chunk.cid, node: p })
      remaining--
    }
  }
  // Trim surplus copies when demand fell, fullest nodes first.
  const surplus = staying.length - target
  if (surplus > 0) {
    const byFullness = [...staying].sort((a, b) => fullness(views.get(b)!) - fullness(views.get(a)!))
    for (const p of byFullness.slice(0, surplus)) {
      if (remaining - 1 < floor) break
      out.push({ kind: 'delete', reason: 'trim', content: content.id, cid: chunk.cid, node: p })
      remaining--
    }
  }
  return out
}

function fullness (n: NodeView): number {
  return n.capacity > 0 ? n.used / n.capacity : 1
}

/**
 * Placement among nodes that do not already hold (or are about to receive)
 * the chunk and are not leaving. A mirror exists to add egress, so mirrors
 * are weighted by the egress a node has to spare rather than by its free disk.
 */
function chooseTarget (chunk: PolicyChunk, already: string[], views: Map<string, NodeView>, nodeList: NodeView[], s: PolicySettings, forEgress = false): NodeView | undefined {
  const exclude = new Set([...chunk.holders, ...already])
  const candidates: PlacementCandidate[] = []
  const avoidZones: string[] = []
  for (const p of exclude) {
    const z = views.get(p)?.zone
    if (views.get(p)?.state !== 'dead' && z != null && z !== '') avoidZones.push(z)
  }
  const cid = CID.parse(chunk.cid)
  for (const n of placementWindow(cid, nodeList, s.placementSample)) {
    if (exclude.has(n.peerId)) continue
    if (n.state !== 'alive' || n.shedDisk > 0 || n.shedContent != null) continue
    // Above the high-water mark once this copy lands: it would only have to move again.
    if (n.capacity > 0 && n.used + n.planned + chunk.size > s.diskHighWater * n.capacity) continue
    if (isCapped(n) && n.egressRate > n.egressCap * s.egressHighWater) continue
    candidates.push({ peerId: n.peerId, state: n.state, zone: n.zone, capacity: n.capacity, used: n.used, planned: n.planned, kadKey: n.kadKey })
  }
  if (candidates.length === 0) return undefined
  const weight = forEgress
    ? (c: PlacementCandidate): number => {
        const n = views.get(c.peerId)!
        return Math.max(1, egressOf(n, s) * s.egressHighWater - n.egressRate)
      }
    : undefined
  try {
    const [best] = placeBlob(cid, candidates, 1, chunk.size, { avoidZones, weight })
    return views.get(best.peerId)
  } catch (err) {
    // No candidate has room for this chunk: the caller counts it as deferred.
    if (err instanceof CapacityError) return undefined
    throw err
  }
}

/** All nodes, or a window of `size` of them starting where the chunk id points. */
function placementWindow (cid: CID, nodes: NodeView[], size: number): NodeView[] {
  if (size <= 0 || nodes.length <= size) return nodes
  const d = cid.multihash.digest
  const start = ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0
  const out: NodeView[] = []
  for (let i = 0; i < size; i++) out.push(nodes[(start + i) % nodes.length])
  return out
}
