/**
 * Messages of the control protocol, spoken over libp2p streams between nodes
 * and the manager. Noise authenticates both ends, so the remote peer id of a
 * stream is who sent a message. One request frame, one response frame per
 * stream (see control-rpc.ts for the framing).
 */
import { CdnError, ProtocolError } from './errors.ts'
import { parseBlobId, parseContentId } from './ids.ts'

export const CONTROL_PROTOCOL = '/cdn/control/1.0.0'

/** Demand a node saw for one content since its last heartbeat. */
export interface ContentLoad {
  /** requests per second */
  requests: number
  /** bytes per second served */
  bytes: number
}

/** Node → manager: ask to join the pool. */
export interface JoinRequest {
  type: 'join'
  token: string
  /** base URL of the node's HTTP data plane, e.g. http://127.0.0.1:9103 */
  http: string
  zone?: string
  capacity: number
  /** bytes/s; absent means unlimited */
  egressCap?: number
}

/** Node → manager: periodic report. */
export interface Heartbeat {
  type: 'heartbeat'
  http: string
  capacity: number
  used: number
  egressCap?: number
  /** bytes/s actually sent over the last interval */
  egressRate: number
  blobs: number
  /** demand per content since the last heartbeat; contents that saw none may be left out */
  contents: Record<string, ContentLoad>
  /**
   * Ids of the contents the node holds (indexed manifests), so the manager can
   * answer which of them to drop. At most MAX_HELD per heartbeat: a node
   * holding more sends a different window of them each time.
   */
  held: string[]
}

export interface BlobSource {
  cid: string
  /** HTTP URLs to fetch the blob from, tried in order */
  sources: string[]
}

/** Manager → node: fetch these blobs, verify their hashes, keep them; then index these contents (their manifests are among the blobs or already held). */
export interface StoreOrder {
  type: 'store'
  blobs: BlobSource[]
  contents: string[]
}

/** Manager → node: remove these blobs and stop providing these contents. */
export interface DeleteOrder {
  type: 'delete'
  blobs: string[]
  contents: string[]
}

/** Manager → node: an operator removed this node from the pool; it stops serving, wipes (unless kept) and exits. */
export interface RemoveOrder {
  type: 'remove'
}

export type NodeToManager = JoinRequest | Heartbeat
export type ManagerToNode = StoreOrder | DeleteOrder | RemoveOrder

/**
 * What every manager tells a node on each join and heartbeat, so a node knows
 * the whole pool's managers and can obey and fail over to any of them:
 * `pool`, the peer id of the pool identity (a node believes it first from the
 * manager its configuration names, and refuses a different one later), and
 * `managers`, the pool's managers as a signed record (core/signed-record.ts,
 * kind `manager-list`, issued by `pool`). Both are absent from managers that
 * predate several managers.
 */
export interface PoolNews {
  pool?: string
  managers?: string
}

export interface Joined extends PoolNews { type: 'joined', heartbeatMs: number }
/**
 * `drop`: held contents the node must delete (blobs and DHT records): the
 * catalog says they are deleted or expired, or knows nothing of them and no
 * publish of them is in flight.
 */
export interface Ack extends PoolNews { type: 'ack', known: boolean, drop: string[] }
export interface StoreResult { cid: string, ok: boolean, error?: string }
export interface Stored { type: 'stored', results: StoreResult[] }
export interface Deleted { type: 'deleted', removed: string[] }
export interface Removed { type: 'removed' }
export interface RpcErrorReply { type: 'error', code: string, message: string }

export type Reply = Joined | Ack | Stored | Deleted | Removed | RpcErrorReply

/** Content ids one heartbeat lists in `held` (and one ack in `drop`); a node holding more rotates through them. */
export const MAX_HELD = 8192
/** Contents one heartbeat reports demand for; the busiest go first. */
export const MAX_REPORTED_LOADS = 4096

/** The error code a removed node's join or heartbeat is answered with: final, the node leaves. */
export const ERR_REMOVED = 'ERR_REMOVED'

/** A removed node knocked again; final for that identity. */
export class NodeRemovedError extends CdnError {
  constructor (message = 'this node was removed from the pool by an operator') { super(message, ERR_REMOVED, 403) }
}

function need (ok: boolean, what: string): void {
  if (!ok) throw new ProtocolError(`malformed control message: ${what}`)
}

const isObj = (v: unknown): v is Record<string, any> => v != null && typeof v === 'object' && !Array.isArray(v)
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0
const isUrl = (v: unknown): boolean => typeof v === 'string' && /^https?:\/\/[^\s]+$/.test(v) && v.length < 2048

function checkCommon (m: Record<string, any>): void {
  need(isUrl(m.http), 'http must be an http(s) URL')
  need(isNum(m.capacity), 'capacity must be a number')
  need(m.egressCap === undefined || m.egressCap === null || isNum(m.egressCap), 'egressCap must be a number')
}

/** Validates a message a manager received from a node. */
export function parseNodeMessage (v: unknown): NodeToManager {
  need(isObj(v), 'not an object')
  const m = v as Record<string, any>
  if (m.type === 'join') {
    need(typeof m.token === 'string', 'token must be a string')
    need(m.zone === undefined || (typeof m.zone === 'string' && m.zone.length <= 64), 'zone must be a short string')
    checkCommon(m)
    return m as JoinRequest
  }
  if (m.type === 'heartbeat') {
    checkCommon(m)
    need(isNum(m.used) && isNum(m.egressRate) && isNum(m.blobs), 'used, egressRate and blobs must be numbers')
    need(isObj(m.contents), 'contents must be an object')
    const loads = Object.entries(m.contents)
    need(loads.length <= MAX_REPORTED_LOADS, `at most ${MAX_REPORTED_LOADS} content loads per heartbeat`)
    for (const [id, load] of loads) {
      parseContentId(id)
      need(isObj(load) && isNum(load.requests) && isNum(load.bytes), 'content load must have requests and bytes')
    }
    // Nodes from before `held` existed send none: they hold nothing the manager can reconcile.
    if (m.held === undefined) m.held = []
    m.held = contentIdList(m.held, 'held')
    return m as Heartbeat
  }
  throw new ProtocolError(`unknown control message type ${JSON.stringify(m.type)}`)
}

/** A list of at most MAX_HELD content ids, each in canonical form, without repeats. */
function contentIdList (v: unknown, what: string): string[] {
  need(Array.isArray(v) && v.length <= MAX_HELD, `${what} must be a list of at most ${MAX_HELD} content ids`)
  return [...new Set((v as unknown[]).map(id => parseContentId(id).toString()))]
}

/** The longest pool news a node reads (a manager list of a few dozen managers is a few KiB). */
const MAX_POOL_NEWS_CHARS = 64 * 1024

/** Checks the shape of a reply's pool news (the signature is the node's to check). */
export function parsePoolNews (v: Record<string, unknown>): PoolNews {
  need(v.pool === undefined || (typeof v.pool === 'string' && v.pool.length > 0 && v.pool.length < 128), 'pool must be a peer id')
  need(v.managers === undefined || (typeof v.managers === 'string' && v.managers.length > 0 && v.managers.length <= MAX_POOL_NEWS_CHARS), 'managers must be a signed record')
  return {
    ...(v.pool !== undefined ? { pool: v.pool as string } : {}),
    ...(v.managers !== undefined ? { managers: v.managers as string } : {})
  }
}

/** Validates a manager's `ack`: `drop` lists content ids (absent from older managers: nothing to drop). */
export function parseAck (v: Record<string, unknown>): Ack {
  need(typeof v.known === 'boolean', 'ack.known must be a boolean')
  return { type: 'ack', known: v.known as boolean, drop: v.drop === undefined ? [] : contentIdList(v.drop, 'ack.drop'), ...parsePoolNews(v) }
}

/** Validates an order a node received from its manager. */
export function parseOrder (v: unknown): ManagerToNode {
  need(isObj(v), 'not an object')
  const m = v as Record<string, any>
  if (m.type === 'remove') return { type: 'remove' }
  need(Array.isArray(m.contents), 'contents must be a list')
  for (const c of m.contents) parseContentId(c)
  need(Array.isArray(m.blobs), 'blobs must be a list')
  if (m.type === 'store') {
    for (const b of m.blobs) {
      need(isObj(b) && Array.isArray(b.sources) && b.sources.length > 0 && b.sources.every(isUrl), 'each blob needs http sources')
      parseBlobId(b.cid)
    }
    return m as StoreOrder
  }
  if (m.type === 'delete') {
    for (const c of m.blobs) parseBlobId(c)
    return m as DeleteOrder
  }
  throw new ProtocolError(`unknown order type ${JSON.stringify(m.type)}`)
}
