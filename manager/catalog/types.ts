/**
 * What the catalog's stores take and give: plain rows, engine-neutral.
 */
import type { NodeState } from '../replication/placement.ts'

export type ContentState = 'pending' | 'visible'
/** `suspect`: a reader reported the copy bad; it no longer counts until repair looks at it. */
export type CopyState = 'pending' | 'confirmed' | 'suspect'

export interface ContentRow {
  id: string
  state: ContentState
  name: string
  type: string
  size: number
  chunkSize: number
  chunkCount: number
  replicas: number
  createdAt: string
  publisher: string
  manifest: Uint8Array | null
  /** ms since the epoch after which the content is deleted everywhere; null: kept until deleted */
  expiresAt: number | null
  /** resolvable only with a capability or a token that may read it */
  private: boolean
  /** id of the token that published it; null for contents published before owners were recorded */
  owner: string | null
}

export interface NewUpload {
  uploadId: string
  name: string
  type: string
  chunkSize: number
  replicas: number
  createdAt: string
  publisher: string
  /** id of the publishing token */
  owner?: string | null
  private?: boolean
  /** peer id of the manager receiving the upload: it alone finishes or cleans it up while it lives */
  manager?: string | null
}

export interface CopyRow {
  content: string
  cid: string
  node: string
  state: CopyState
}

export interface CopySummary {
  /** fewest copies of any chunk, counting confirmed copies on nodes that are not dead */
  min: number
  max: number
  nodes: string[]
}

export interface NodeRow {
  peerId: string
  http: string
  zone: string | null
  capacity: number
  used: number
  egressCap: number | null
  egressRate: number
  blobs: number
  state: NodeState
  /** an operator asked the node to drain: it stays draining across deaths and rejoins */
  drain: boolean
  /** ms since the epoch */
  lastSeen: number
  joinedAt: number
  /** the node's libp2p listen addresses, without /p2p/ */
  addrs: string[]
}

export interface NodeJoin {
  peerId: string
  http: string
  zone: string | null
  capacity: number
  egressCap: number | null
  addrs: string[]
}

export interface NodeFigures {
  http: string
  capacity: number
  used: number
  egressCap: number | null
  egressRate: number
  blobs: number
  addrs?: string[]
}

/** What the catalog says one node holds: copy rows in any state, and the contents they belong to. */
export interface NodeHoldings {
  copies: number
  contents: number
}

/** One copy row of a visible content's blob, with what the replication controller needs to know of it. */
export interface BlobCopyRow {
  content: string
  cid: string
  size: number
  /** null for a blob without any copy row */
  node: string | null
  state: CopyState | null
}

/** A visible content as the replication controller sees it. */
export interface ReplicaContent {
  id: string
  replicas: number
  expiresAt: number | null
  manifestSize: number
  chunkCount: number
}

/** Copies of the blobs of visible contents, counted the way the invariant is stated: confirmed, on nodes not dead. */
export interface ReplicationSummary {
  contents: number
  chunks: number
  /** fewest such copies of any chunk; null when there are no chunks */
  lowest: number | null
  /** chunks with fewer than the given minimum */
  belowMin: number
  /** chunks with fewer than their content's R */
  belowBase: number
}

/** A blob whose copy on a node is one of too few. */
export interface ChunkAtRisk {
  content: string
  cid: string
  /** copies on other nodes that count (confirmed, on nodes not dead) */
  others: number
}

export interface EventRow {
  id: number
  at: string
  kind: EventKind
  content: string | null
  node: string | null
  detail: Record<string, unknown> | null
}

export interface NewEvent {
  kind: EventKind
  content?: string | null
  node?: string | null
  detail?: Record<string, unknown>
}

/** A delete that still has blobs to remove on one node. */
export interface PendingDelete {
  content: string
  node: string
  blobs: string[]
}

/** Every kind of event the manager records; `cdn events` shows them to users (docs/PROTOCOLS.md). */
export type EventKind =
  | 'content-published' | 'content-shared' | 'content-deleted' | 'content-expired' | 'publish-failed'
  | 'copies-added' | 'copies-removed' | 'copy-failed' | 'delete-refused' | 'delete-resumed'
  | 'bad-copy-verified' | 'bad-copy-unverified' | 'bad-copy-rejected'
  | 'repair-blocked' | 'repair-unblocked'
  | 'node-joined' | 'node-join-refused' | 'node-alive' | 'node-dead' | 'node-draining' | 'node-removed'
  | 'token-created' | 'token-revoked'
