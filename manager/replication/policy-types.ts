/**
 * What the replication policy reads (nodes, contents, their chunks and
 * copies, settings) and what it answers (actions and a report).
 */
export type PolicyNodeState = 'alive' | 'dead' | 'draining'

export interface PolicyNode {
  peerId: string
  state: PolicyNodeState
  zone?: string | null
  capacity: number
  used: number
  /** bytes/s; Infinity when the operator set no cap */
  egressCap: number
  /** bytes/s sent over the last heartbeat interval */
  egressRate: number
  kadKey?: Uint8Array
}

export interface PolicyChunk {
  cid: string
  size: number
  /** peer ids holding a hash-confirmed copy (dead nodes included: the policy decides they do not count) */
  holders: string[]
  /** holders whose copy a reader reported bad */
  bad?: string[]
  /**
   * An action on this chunk is still under way: it counts as it is, and no
   * new action is planned for it this round (never two at once on a chunk).
   */
  busy?: boolean
}

export interface PolicyContent {
  id: string
  /** the publisher's R: copies kept with no demand */
  base: number
  /** bytes/s served for this content across the pool, from heartbeats */
  demand: number
  chunks: PolicyChunk[]
  /** ms since the epoch; past it the content is deleted everywhere */
  expiresAt?: number | null
}

export interface PolicySettings {
  /** copies no chunk may ever drop below through our own deletions */
  minCopies: number
  /** most copies demand may raise a content to */
  maxCopies: number
  /** add copies when demand exceeds this share of its holders' egress */
  mirrorUtilization: number
  /** remove copies only when demand would stay under this share with fewer (hysteresis: < mirrorUtilization) */
  trimUtilization: number
  /** egress assumed for a node with no cap when sizing mirrors, bytes/s */
  uncappedEgress: number
  /** a node above this share of its capacity sheds data */
  diskHighWater: number
  /** ...and sheds down to this share, so it does not hover at the mark */
  diskLowWater: number
  /** a node sending above this share of its egress cap sheds its busiest content */
  egressHighWater: number
  /** bytes the pool may copy for its own moves in this reconcile round */
  moveBudget: number
  /**
   * Nodes considered when placing one new copy; 0 means all. Large pools
   * rank a window of this many nodes (chosen by the chunk id, so still
   * deterministic) instead of every node: placement stays O(sample).
   */
  placementSample: number
}

export const DEFAULT_POLICY: PolicySettings = {
  minCopies: 2,
  maxCopies: 8,
  mirrorUtilization: 0.6,
  trimUtilization: 0.25,
  uncappedEgress: 100e6,
  diskHighWater: 0.9,
  diskLowWater: 0.8,
  egressHighWater: 0.9,
  moveBudget: 512 * 1024 * 1024,
  placementSample: 0
}

export type CopyReason = 'repair' | 'bad-copy' | 'drain' | 'migrate' | 'mirror'
export type DeleteReason = 'trim' | 'drain' | 'migrate' | 'bad-copy'

export interface CopyAction { kind: 'copy', reason: CopyReason, content: string, cid: string, size: number, from: string[], to: string }
export interface DeleteAction { kind: 'delete', reason: DeleteReason, content: string, cid: string, node: string }
export interface ExpireAction { kind: 'expire', content: string }
export type PolicyAction = CopyAction | DeleteAction | ExpireAction

export interface PolicyInput {
  nodes: PolicyNode[]
  contents: PolicyContent[]
  settings: PolicySettings
  /** ms since the epoch */
  now: number
}

export interface PolicyReport {
  actions: PolicyAction[]
  /** copies wanted per content id, after demand */
  wanted: Map<string, number>
  /** chunks with fewer healthy copies than their content's base */
  underReplicated: number
  /** copies that were needed but did not fit this round's move budget or found no room */
  deferred: number
}
