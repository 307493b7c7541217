/**
 * Placement: which nodes keep the copies of one blob. A pure policy (no I/O),
 * so the publish pipeline, the replication controller, the unit tests and the
 * simulator all run the same code.
 *
 * Nodes are ranked by weighted rendezvous hashing over the DHT's own metric:
 * the XOR distance between the blob's Kademlia key and the node's Kademlia key,
 * weighted by the node's free space. The closest nodes in DHT terms are
 * favoured (they are the ones a Kademlia lookup reaches first), while a node
 * with twice the free space receives about twice the copies.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import { BadInputError, CapacityError } from '../core/errors.ts'
import { kadKeyOfCid, sha256Bytes } from '../core/ids.ts'

export type NodeState = 'alive' | 'dead' | 'draining'

export interface PlacementCandidate {
  peerId: string
  state: NodeState
  /** failure domain the operator declared; nodes without one share no zone with anybody */
  zone?: string | null
  capacity: number
  used: number
  /** bytes already planned onto this node by the caller but not yet reported in `used` */
  planned?: number
  /** the node's Kademlia key; computed from `peerId` when absent (callers placing many blobs pass it once) */
  kadKey?: Uint8Array
}

export interface PlacementOptions {
  /** zones already holding a copy of this blob (when adding copies to an existing set) */
  avoidZones?: Iterable<string>
}

/** The 256-bit Kademlia key of a peer, the way kad-dht derives it: sha256 of the peer id's multihash bytes. */
export function kadKeyOfPeer (peerId: string): Uint8Array {
  let bytes: Uint8Array
  try {
    bytes = peerIdFromString(peerId).toMultihash().bytes
  } catch (err) {
    throw new BadInputError(`invalid peer id "${peerId}"`, { cause: err })
  }
  return sha256Bytes(bytes)
}

export function freeBytes (c: PlacementCandidate): number {
  return c.capacity - c.used - (c.planned ?? 0)
}

/** 2^48: the top 48 bits of the XOR distance fit a double exactly. */
const SCALE = 2 ** 48

/**
 * XOR distance normalised into the open interval (0, 1). Only its top bits
 * matter: they decide the ranking long before the rest could.
 */
function normalisedDistance (a: Uint8Array, b: Uint8Array): number {
  let top = 0
  for (let i = 0; i < 6; i++) top = top * 256 + ((a[i] ^ b[i]) & 0xff)
  return (top + 0.5) / SCALE
}

/**
 * Weighted rendezvous score: with d uniform in (0,1), -ln(1-d) is Exp(1), and
 * dividing by the weight makes the minimum over nodes fall on each node with
 * probability proportional to its weight. Lower wins.
 */
function score (chunkKey: Uint8Array, node: PlacementCandidate, weight: number): number {
  const d = normalisedDistance(chunkKey, node.kadKey ?? kadKeyOfPeer(node.peerId))
  return -Math.log1p(-d) / weight
}

/**
 * Chooses `replicas` distinct nodes for a blob of `blobSize` bytes. Dead,
 * draining and full nodes are skipped; copies go to distinct zones while
 * some zone not yet used still has an eligible node. Deterministic: the same
 * inputs give the same answer. Throws CapacityError when fewer than
 * `replicas` nodes are eligible.
 */
export function placeBlob (blob: CID, candidates: readonly PlacementCandidate[], replicas: number, blobSize: number, options: PlacementOptions = {}): PlacementCandidate[] {
  if (!Number.isSafeInteger(replicas) || replicas < 1) throw new BadInputError(`replicas must be a positive integer, got ${replicas}`)
  const key = kadKeyOfCid(blob)
  const ranked: Array<{ node: PlacementCandidate, score: number }> = []
  const seen = new Set<string>()
  for (const node of candidates) {
    if (node.state !== 'alive' || seen.has(node.peerId)) continue
    const free = freeBytes(node)
    if (!(free >= blobSize) || free <= 0) continue
    seen.add(node.peerId)
    ranked.push({ node, score: score(key, node, free) })
  }
  if (ranked.length < replicas) {
    throw new CapacityError(`need ${replicas} nodes with ${blobSize} bytes free for ${blob.toString()}, only ${ranked.length} eligible`)
  }
  ranked.sort((a, b) => a.score - b.score || (a.node.peerId < b.node.peerId ? -1 : a.node.peerId > b.node.peerId ? 1 : 0))

  const chosen: PlacementCandidate[] = []
  const usedZones = new Set<string>(options.avoidZones ?? [])
  const taken = new Set<string>()
  // First pass: best-ranked node of each zone not used yet; zoneless nodes never collide.
  for (const { node } of ranked) {
    if (chosen.length === replicas) break
    if (node.zone != null && node.zone !== '') {
      if (usedZones.has(node.zone)) continue
      usedZones.add(node.zone)
    }
    chosen.push(node)
    taken.add(node.peerId)
  }
  // Second pass: when zones ran out, repeat a zone rather than fail.
  for (const { node } of ranked) {
    if (chosen.length === replicas) break
    if (taken.has(node.peerId)) continue
    chosen.push(node)
    taken.add(node.peerId)
  }
  return chosen
}
