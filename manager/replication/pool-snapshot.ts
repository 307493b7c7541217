/**
 * The pool as the replication policy sees it, read afresh from the catalog
 * each round (the policy keeps no state between rounds): nodes with their
 * figures, visible contents with the copies of each chunk and their demand.
 *
 * Three corrections make the catalog's picture current between heartbeats:
 * a node's disk use includes what our own finished moves added or freed
 * since its last report and what moves under way are about to add; a chunk
 * with an action under way is marked busy; and egress and demand come
 * smoothed from the demand tracker.
 */
import type { Catalog, CopyState } from '../catalog/catalog.ts'
import type { DemandTracker } from './demand-tracker.ts'
import { kadKeyOfPeer } from './placement.ts'
import type { PolicyChunk, PolicyContent, PolicyNode } from './replication-policy.ts'

export interface PoolSnapshotComponents {
  catalog: Pick<Catalog, 'listNodes' | 'replicaContents' | 'replicaCopies' | 'transaction'>
  demand: Pick<DemandTracker, 'byContent' | 'egressOf'>
  /** what our own moves change, until the nodes report it themselves */
  moves: {
    isBusy: (cid: string) => boolean
    /** bytes a node gained (+) or freed (−) through actions finished after `since`, plus those still arriving */
    usageChange: (node: string, since: number) => number
  }
}

export interface PoolSnapshot {
  nodes: PolicyNode[]
  contents: PolicyContent[]
  /** bytes/s the nodes that are not dead can send, uncapped ones counted at `uncappedEgress` */
  totalEgress: number
  /** the largest blob of any content, so a move budget can always admit one */
  largestBlob: number
  /** chunks (and manifests standing in for empty contents) in the snapshot */
  chunks: number
}

export class PoolSnapshotter {
  private readonly c: PoolSnapshotComponents
  /** Kademlia keys cost a hash each; placement needs them for every node, every round. */
  private readonly kadKeys = new Map<string, Uint8Array>()

  constructor (components: PoolSnapshotComponents) {
    this.c = components
  }

  /**
   * One transaction, so the three reads agree with each other; the moves'
   * corrections are read inside it too: on SQLite no copy can be confirmed
   * (and its move leave the busy set) between the reads and the corrections.
   */
  async take (now: number, uncappedEgress: number): Promise<PoolSnapshot> {
    return this.c.catalog.transaction(async () => this.read(now, uncappedEgress))
  }

  private async read (now: number, uncappedEgress: number): Promise<PoolSnapshot> {
    const { catalog, demand, moves } = this.c
    const [nodeRows, copyRows, contentRows] = [await catalog.listNodes(), await catalog.replicaCopies(), await catalog.replicaContents()]
    const nodes: PolicyNode[] = []
    let totalEgress = 0
    for (const n of nodeRows) {
      const egressCap = n.egressCap != null && n.egressCap > 0 ? n.egressCap : Infinity
      nodes.push({
        peerId: n.peerId,
        state: n.state,
        zone: n.zone,
        capacity: n.capacity,
        used: Math.max(0, n.used + moves.usageChange(n.peerId, n.lastSeen)),
        egressCap,
        egressRate: demand.egressOf(n.peerId, now) ?? n.egressRate,
        kadKey: this.kadKeyOf(n.peerId)
      })
      if (n.state !== 'dead') totalEgress += Number.isFinite(egressCap) ? egressCap : uncappedEgress
    }

    const load = demand.byContent(now)
    const byContent = new Map<string, Map<string, PolicyChunk>>()
    const manifests = new Map<string, PolicyChunk>()
    let largestBlob = 0
    for (const r of copyRows) {
      const isManifest = r.cid === r.content
      let chunk: PolicyChunk | undefined
      if (isManifest) {
        chunk = manifests.get(r.content)
        if (chunk == null) manifests.set(r.content, chunk = newChunk(r.cid, r.size))
      } else {
        let chunks = byContent.get(r.content)
        if (chunks == null) byContent.set(r.content, chunks = new Map())
        chunk = chunks.get(r.cid)
        if (chunk == null) chunks.set(r.cid, chunk = newChunk(r.cid, r.size))
      }
      largestBlob = Math.max(largestBlob, r.size)
      if (r.node != null) addCopy(chunk, r.node, r.state)
    }

    const contents: PolicyContent[] = []
    let chunkCount = 0
    for (const c of contentRows) {
      let chunks = [...(byContent.get(c.id)?.values() ?? [])]
      // An empty content is only its manifest: the manifest is then what must keep its copies.
      // Otherwise manifests follow the chunks (every holder of a chunk keeps the manifest).
      if (c.chunkCount === 0) chunks = [manifests.get(c.id) ?? newChunk(c.id, c.manifestSize)]
      for (const ch of chunks) ch.busy = moves.isBusy(ch.cid)
      chunkCount += chunks.length
      contents.push({ id: c.id, base: c.replicas, demand: load.get(c.id)?.bytes ?? 0, chunks, expiresAt: c.expiresAt })
    }
    return { nodes, contents, totalEgress, largestBlob, chunks: chunkCount }
  }

  private kadKeyOf (peerId: string): Uint8Array {
    let key = this.kadKeys.get(peerId)
    if (key == null) this.kadKeys.set(peerId, key = kadKeyOfPeer(peerId))
    return key
  }
}

function newChunk (cid: string, size: number): PolicyChunk {
  return { cid, size, holders: [], bad: [] }
}

/**
 * Confirmed copies hold the chunk; suspect ones hold it too but are bad (the
 * policy replaces, then deletes them). A pending copy of a visible content
 * is one of our own moves under way, and its chunk is busy: it does not count yet.
 */
function addCopy (chunk: PolicyChunk, node: string, state: CopyState | null): void {
  if (state === 'confirmed') chunk.holders.push(node)
  else if (state === 'suspect') {
    chunk.holders.push(node)
    chunk.bad!.push(node)
  }
}
