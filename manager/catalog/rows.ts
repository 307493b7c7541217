/**
 * Typed row mappers: the columns as the engine returns them, and the rows the
 * stores hand out. A column's name or type changes here and nowhere else.
 */
import type { BlobCopyRow, ContentRow, CopyState, EventKind, EventRow, NodeRow, PendingDelete } from './types.ts'

type Int = number | bigint

export interface ContentColumns {
  id: string
  state: ContentRow['state']
  name: string
  type: string
  size: number
  chunk_size: number
  chunk_count: number
  replicas: number
  created_at: string
  publisher: string
  manifest: Uint8Array | null
  expires_at: number | null
  private: Int
  owner: string | null
}

export interface NodeColumns {
  peer_id: string
  http: string
  zone: string | null
  capacity: number
  used: number
  egress_cap: number | null
  egress_rate: number
  blobs: number
  state: NodeRow['state']
  drain: Int
  last_seen: number
  joined_at: number
  addrs: string
}

export interface EventColumns {
  id: number
  at: string
  kind: EventKind
  content: string | null
  node: string | null
  detail: string | null
}

export interface BlobCopyColumns {
  content: string
  cid: string
  size: number
  node: string | null
  state: CopyState | null
}

export interface PendingDeleteColumns {
  content: string
  node: string
  blobs: string
}

/** The engine's rows are untyped records; each store names the columns it selected. */
export const as = <T> (rows: unknown[]): T[] => rows as T[]
export const one = <T> (row: unknown): T | undefined => row as T | undefined

export function contentRow (r: ContentColumns): ContentRow {
  return {
    id: r.id,
    state: r.state,
    name: r.name,
    type: r.type,
    size: r.size,
    chunkSize: r.chunk_size,
    chunkCount: r.chunk_count,
    replicas: r.replicas,
    createdAt: r.created_at,
    publisher: r.publisher,
    manifest: r.manifest ?? null,
    expiresAt: r.expires_at ?? null,
    private: Number(r.private) === 1,
    owner: r.owner ?? null
  }
}

export function nodeRow (r: NodeColumns): NodeRow {
  return {
    peerId: r.peer_id,
    http: r.http,
    zone: r.zone ?? null,
    capacity: r.capacity,
    used: r.used,
    egressCap: r.egress_cap ?? null,
    egressRate: r.egress_rate,
    blobs: r.blobs,
    state: r.state,
    drain: Number(r.drain) === 1,
    lastSeen: r.last_seen,
    joinedAt: r.joined_at,
    // A malformed column only costs the addresses, which the next heartbeat rewrites.
    addrs: parseIdList(r.addrs)
  }
}

export function eventRow (r: EventColumns): EventRow {
  let detail: Record<string, unknown> | null = null
  if (r.detail != null) {
    try {
      detail = JSON.parse(r.detail)
    } catch {
      detail = { raw: r.detail }
    }
  }
  return { id: r.id, at: r.at, kind: r.kind, content: r.content ?? null, node: r.node ?? null, detail }
}

export function blobCopyRow (r: BlobCopyColumns): BlobCopyRow {
  return { content: r.content, cid: r.cid, size: r.size, node: r.node ?? null, state: r.state ?? null }
}

export function pendingDeleteRow (r: PendingDeleteColumns): PendingDelete {
  return { content: r.content, node: r.node, blobs: parseIdList(r.blobs) }
}

/** A JSON array of strings; anything else reads as empty. */
export function parseIdList (text: string): string[] {
  try {
    const v = JSON.parse(text)
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []
  } catch {
    return []
  }
}
