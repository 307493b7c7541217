/**
 * The node registry: who is in the pool and whether they are alive. Nodes
 * join with a join token and then heartbeat; a node silent for longer than
 * `deadNodeMs` is declared dead, and comes back alive when it heartbeats again.
 * (Re-copying a dead node's chunks is the replication controller's job.)
 *
 * Each heartbeat is also where a node converges on the catalog: its ack names
 * the held contents it must drop (deleted, expired, or unknown with no
 * publish in flight), so a node that missed a delete order finishes it within
 * a heartbeat of coming back. A removed node is answered ERR_REMOVED, and
 * leaves. What a node claims about its own load counts only up to its own
 * egress cap.
 */
import { describeError, ProtocolError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import { MAX_HELD, NodeRemovedError, type Ack, type ContentLoad, type Heartbeat, type JoinRequest, type Joined, type NodeToManager, type PoolNews } from '../../core/wire.ts'
import type { Catalog, NodeRow } from '../catalog/catalog.ts'
import { kadKeyOfPeer, type PlacementCandidate } from '../replication/placement.ts'
import type { TokenStore } from '../catalog/tokens.ts'

export interface NodeRegistryComponents {
  catalog: Catalog
  tokens: TokenStore
  logger: Logger
  /** the node's current libp2p listen addresses as the host learnt them (identify), without /p2p/ */
  addressesOf?: (peerId: string) => Promise<string[]>
  /** ms since the epoch; injectable so liveness can be tested without waiting */
  now?: () => number
  /** told of every accepted heartbeat (the demand signal of the replication controller); awaited before the ack */
  onHeartbeat?: (peerId: string, heartbeat: Heartbeat, now: number) => void | Promise<void>
  /** what every joined and ack tells the node about the pool (its identity and managers) */
  poolNews?: () => Promise<PoolNews>
  /** told when a node is declared dead */
  onDead?: (peerId: string) => void
}

export interface NodeRegistryInit {
  /** told to nodes in `joined` */
  heartbeatMs: number
  /** silence after which a node is dead */
  deadNodeMs: number
  /** bytes/s of demand a node without an egress cap can add at most (default: unbounded) */
  uncappedEgress?: number
}

/** What a node reports serving, believed only up to what it could send. */
export interface Demand {
  egressRate: number
  contents: Record<string, ContentLoad>
}

/**
 * Caps a node's claimed demand by its own egress cap (or `uncappedEgress`
 * for a node without one): a node claiming 10 GB/s behind a 25 MB/s cap
 * counts as 25 MB/s, its per-content bytes scaled down alike, so no node can
 * buy mirrors with figures it could not have served.
 */
export function cappedDemand (report: { egressRate: number, egressCap?: number | null, contents: Record<string, ContentLoad> }, uncappedEgress = Infinity): Demand {
  const cap = report.egressCap != null && report.egressCap > 0 ? report.egressCap : uncappedEgress
  const egressRate = Math.min(report.egressRate, cap)
  let bytes = 0
  for (const load of Object.values(report.contents)) bytes += load.bytes
  if (bytes <= cap) return { egressRate, contents: report.contents }
  const scale = cap / bytes
  const contents: Record<string, ContentLoad> = {}
  for (const [id, load] of Object.entries(report.contents)) contents[id] = { requests: load.requests, bytes: load.bytes * scale }
  return { egressRate, contents }
}

function refuseRemoved (): never {
  throw new NodeRemovedError('this node was removed from the pool by an operator; to add the server again, start it with a fresh --data directory (a new identity)')
}

export class NodeRegistry {
  private readonly c: NodeRegistryComponents
  private readonly log: Logger
  private readonly now: () => number
  readonly heartbeatMs: number
  readonly deadNodeMs: number
  private readonly uncappedEgress: number
  /** Kademlia keys cost a hash per node; placement needs them for every chunk. */
  private readonly kadKeys = new Map<string, Uint8Array>()

  constructor (components: NodeRegistryComponents, init: NodeRegistryInit) {
    this.c = components
    this.log = components.logger
    this.now = components.now ?? Date.now
    this.heartbeatMs = init.heartbeatMs
    this.deadNodeMs = init.deadNodeMs
    this.uncappedEgress = init.uncappedEgress ?? Infinity
  }

  /** Control-protocol entry point for node → manager messages (already validated by parseNodeMessage). */
  async handle (message: NodeToManager, peerId: string): Promise<Joined | Ack> {
    if (message.type === 'join') return this.join(message, peerId)
    if (message.type === 'heartbeat') return this.heartbeat(message, peerId)
    throw new ProtocolError('unexpected control message')
  }

  async join (req: JoinRequest, peerId: string): Promise<Joined> {
    // First, whatever its token: a removed identity (noise proved it is that peer) must leave, not retry.
    if (await this.c.catalog.isRemoved(peerId)) {
      this.log.warn({ node: peerId }, 'a removed node tried to join; refused')
      await this.c.catalog.recordEvent({ kind: 'node-join-refused', node: peerId, detail: { reason: 'removed', http: req.http } })
      refuseRemoved()
    }
    // Throws UnauthorizedError, which the RPC layer turns into an `error` reply.
    await this.c.tokens.authenticate('join', req.token)
    const addrs = await this.addressesOf(peerId)
    const before = await this.c.catalog.recordJoin({
      peerId,
      http: req.http,
      zone: req.zone != null && req.zone !== '' ? req.zone : null,
      capacity: req.capacity,
      egressCap: req.egressCap ?? null,
      addrs
    }, this.now(), { http: req.http, zone: req.zone ?? null, capacity: req.capacity })
    this.log.info({ node: peerId, http: req.http, zone: req.zone, capacity: req.capacity, rejoin: before != null }, 'node joined')
    return { type: 'joined', heartbeatMs: this.heartbeatMs, ...await this.poolNews() }
  }

  async heartbeat (hb: Heartbeat, peerId: string): Promise<Ack> {
    const { catalog } = this.c
    if (await catalog.isRemoved(peerId)) refuseRemoved()
    const addrs = await this.addressesOf(peerId)
    const demand = cappedDemand(hb, this.uncappedEgress)
    const now = this.now()
    const seen = await catalog.transaction(async () => {
      const before = await catalog.recordHeartbeat(peerId, {
        http: hb.http,
        capacity: hb.capacity,
        used: hb.used,
        egressCap: hb.egressCap ?? null,
        // Shown as the node's egress use: its claim, within its own cap (an uncapped node's is shown as claimed).
        egressRate: cappedDemand({ ...hb, contents: {} }).egressRate,
        blobs: hb.blobs,
        addrs
      }, now)
      if (before == null) return undefined
      const drop = await catalog.contentsToDrop(hb.held, now)
      // A complete list shows which owed deletes the node has finished (or never needed); those it
      // still holds stay owed until a heartbeat shows them gone.
      if (hb.held.length < MAX_HELD) await catalog.clearPendingDeletesNotHeld(peerId, hb.held)
      return { before, drop }
    })
    if (seen == null) {
      this.log.info({ node: peerId }, 'heartbeat from an unknown node; asking it to join')
      return { type: 'ack', known: false, drop: [], ...await this.poolNews() }
    }
    if (seen.before.state === 'dead') this.log.info({ node: peerId }, 'dead node is alive again')
    if (seen.drop.length > 0) this.log.info({ node: peerId, contents: seen.drop.length }, 'node holds contents the catalog does not keep; asking it to drop them')
    try {
      await this.c.onHeartbeat?.(peerId, { ...hb, ...demand }, now)
    } catch (err) {
      // Demand is a signal, not state: the next heartbeat brings it again.
      this.log.warn({ node: peerId, err: describeError(err) }, 'could not record the demand a node reported')
    }
    return { type: 'ack', known: true, drop: seen.drop, ...await this.poolNews() }
  }

  /**
   * Records a node's listen addresses when the host learns them (identify),
   * which may be after its join was handled; they let orders reach the node
   * after a manager restart, before it dials in again.
   */
  async updateAddresses (peerId: string, addrs: string[]): Promise<void> {
    if (addrs.length === 0) return
    if (await this.c.catalog.setNodeAddrs(peerId, addrs)) this.log.debug({ node: peerId, addrs }, 'node addresses updated')
  }

  /** Declares dead every node silent past the deadline; returns the peer ids that just died. */
  async sweep (): Promise<string[]> {
    const now = this.now()
    const cutoff = now - this.deadNodeMs
    const died = (await this.c.catalog.markSilentDead(cutoff, now)).map(n => n.peerId)
    for (const node of died) {
      this.log.warn({ node, deadNodeMs: this.deadNodeMs }, 'node missed its heartbeats; marked dead')
      this.c.onDead?.(node)
    }
    return died
  }

  async list (): Promise<NodeRow[]> {
    return this.c.catalog.listNodes()
  }

  /** Every known node as a placement candidate (placement itself skips the ineligible ones). */
  async candidates (): Promise<PlacementCandidate[]> {
    return (await this.list()).map(n => ({
      peerId: n.peerId,
      state: n.state,
      zone: n.zone,
      capacity: n.capacity,
      used: n.used,
      kadKey: this.kadKeyOf(n.peerId)
    }))
  }

  async countByState (): Promise<Record<string, number>> {
    const out: Record<string, number> = {}
    for (const n of await this.list())
 out[n.state] = (out[n.state] ?? 0) + 1
    return out
  }

  private kadKeyOf (peerId: string): Uint8Array {
    let key = this.kadKeys.get(peerId)
    if (key == null) {
      key = kadKeyOfPeer(peerId)
      this.kadKeys.set(peerId, key)
    }
    return key
  }

  /** Pool news is a courtesy on top of the answer: a node keeps the list it has when it cannot be had. */
  private async poolNews (): Promise<PoolNews> {
    if (this.c.poolNews == null) return {}
    try {
      return await this.c.poolNews()
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'could not tell a node about the pool\'s managers')
      return {}
    }
  }

  private async addressesOf (peerId: string): Promise<string[]> {
    if (this.c.addressesOf == null) return []
    try {
      return await this.c.addressesOf(peerId)
    } catch (err) {
      this.log.debug({ node: peerId, err: String(err) }, 'no addresses known for node yet')
      return []
    }
  }
}
