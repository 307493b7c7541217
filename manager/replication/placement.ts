/**
 * Placement: which nodes keep the copies of one blob. A pure policy (no I/O),
 * so the publish pipeline, the replication controller, the unit tests and the
 * simulator all run the same code.
 *
 * Nodes are ranked by weighted rendezvous hashing keyed on the DHT's own
 * metric, the XOR distance between the blob's Kademlia key and the node's,
 * and weighted by the node's free space: a node with twice the free space
 * receives about twice the copies, and the ranking of one blob changes only
 * for the nodes that join, leave or fill up.
 */
import { peerIdFromString } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import { BadInputError, CapacityError } from '../../core/errors.ts'
import { kadKeyOfCid, sha256Bytes } from '../../core/ids.ts'

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
  /** what a node's share of copies is proportional to (default: its free bytes); must be > 0 */
  weight?: (node: PlacementCandidate) => number
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

/** Murmur3's 32-bit finaliser: every input bit flips about half the output bits. */
function fmix32 (h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Murmur3-style hash of the eight 32-bit words of `a XOR b`, with a seed per lane. */
function hashXor (a: Uint8Array, b: Uint8Array, seed: number): number {
  let h = seed
  for (let i = 0; i < 32; i += 4) {
    let k = (((a[i] ^ b[i]) << 24) | ((a[i + 1] ^ b[i + 1]) << 16) | ((a[i + 2] ^ b[i + 2]) << 8) | (a[i + 3] ^ b[i + 3])) >>> 0
    k = Math.imul(k, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  return fmix32(h ^ 32)
}

/**
 * The XOR distance between the blob's and the node's Kademlia keys, whitened
 * into a uniform number in the open interval (0, 1).
 *
 * Why whitened: raw XOR distances from one blob to all nodes are rigidly
 * correlated (d_i XOR d_j is the fixed n_i XOR n_j), so ranking by the raw
 * distance hands each node the share of key space its id happens to cover;
 * with 8-32 random ids that share ranged from 0 to 5.7 times the fair one in
 * a measurement. Hashing the distance keeps the pairing the DHT defines
 * (deterministic, and adding a node only moves blobs onto it) while making
 * the values independent across nodes, which the weighting below needs.
 */
function pairValue (blobKey: Uint8Array, nodeKey: Uint8Array): number {
  const hi = hashXor(blobKey, nodeKey, 0x9747b28c) >>> 11 // 21 bits
  const lo = hashXor(blobKey, nodeKey, 0x2545f491) // 32 bits
  return (hi * 2 ** 32 + lo + 0.5) / 2 ** 53
}

/**
 * Weighted rendezvous score: with d uniform in (0,1), -ln(1-d) is Exp(1), and
 * dividing by the weight makes the minimum over nodes fall on each node with
 * probability proportional to its weight. Lower wins.
 */
function score (blobKey: Uint8Array, node: PlacementCandidate, weight: number): number {
  const d = pairValue(blobKey, node.kadKey ?? kadKeyOfPeer(node.peerId))
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
    const weight = options.weight?.(node) ?? free
    if (!(weight > 0)) continue
    ranked.push({ node, score: score(key, node, weight) })
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
