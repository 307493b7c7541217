/**
 * Nodes: who is in the pool, their figures, their state (alive, dead,
 * draining), and the identities removed for good. A change of state and its
 * event are written in one transaction here.
 */
import type { NodeState } from '../replication/placement.ts'
import type { SqlEngine } from './engine.ts'
import type { EventStore } from './events.ts'
import { Store } from './store.ts'
import { as, nodeRow, one, type NodeColumns } from './rows.ts'
import type { NodeFigures, NodeJoin, NodeRow } from './types.ts'

/** Node figures arrive as JSON numbers; integer columns take them rounded. */
const int = (n: number): number => Math.max(0, Math.round(n))

export class NodeStore extends Store<ReturnType<typeof prepare>> {
  constructor (db: SqlEngine, events: EventStore) {
    super(db, events, prepare(db))
  }

  async getNode (peerId: string): Promise<NodeRow | undefined> {
    const r = one<NodeColumns>(await this.s.getNode.get(peerId))
    return r == null ? undefined : nodeRow(r)
  }

  async listNodes (): Promise<NodeRow[]> {
    return as<NodeColumns>(await this.s.listNodes.all()).map(nodeRow)
  }

  /**
   * Records a join. A draining node stays draining (the operator asked it to
   * leave); any other state becomes alive. Returns the row as it was before.
   */
  async joinNode (j: NodeJoin, now: number): Promise<NodeRow | undefined> {
    return this.db.transaction(async () => {
      const before = await this.getNode(j.peerId)
      await this.s.upsertJoin.run(j.peerId, j.http, j.zone, int(j.capacity), j.egressCap, now, now, JSON.stringify(j.addrs))
      return before
    })
  }

  /** A join and its `node-joined` event, in one transaction; returns the row as it was before. */
  async recordJoin (j: NodeJoin, now: number, detail: Record<string, unknown>): Promise<NodeRow | undefined> {
    return this.db.transaction(async () => {
      const before = await this.joinNode(j, now)
      await this.events.record({ kind: 'node-joined', node: j.peerId, detail: { ...detail, rejoin: before != null } })
      return before
    })
  }

  /** Updates a known node's figures and last-seen time; a dead node is alive again. Returns the row as it was before, undefined when unknown. */
  async heartbeatNode (peerId: string, f: NodeFigures, now: number): Promise<NodeRow | undefined> {
    return this.db.transaction(async () => {
      const before = await this.getNode(peerId)
      if (before == null) return undefined
      const addrs = f.addrs != null && f.addrs.length > 0 ? JSON.stringify(f.addrs) : JSON.stringify(before.addrs)
      await this.s.heartbeat.run(f.http, int(f.capacity), int(f.used), f.egressCap, f.egressRate, int(f.blobs), now, addrs, peerId)
      return before
    })
  }

  /** A heartbeat, with a `node-alive` event when it brings a dead node back, in one transaction. */
  async recordHeartbeat (peerId: string, f: NodeFigures, now: number): Promise<NodeRow | undefined> {
    return this.db.transaction(async () => {
      const before = await this.heartbeatNode(peerId, f, now)
      if (before?.state === 'dead') await this.events.record({ kind: 'node-alive', node: peerId, detail: { silentMs: now - before.lastSeen } })
      return before
    })
  }

  /** Replaces a known node's libp2p addresses; false when the node is unknown. */
  async setNodeAddrs (peerId: string, addrs: string[]): Promise<boolean> {
    return Number((await this.s.setNodeAddrs.run(JSON.stringify(addrs), peerId)).changes) > 0
  }

  async setNodeState (peerId: string, state: NodeState): Promise<void> {
    await this.s.setNodeState.run(state, peerId)
  }

  /** Marks a node as asked to drain; a live node turns draining at once, a dead one when it comes back. */
  async setDrain (peerId: string): Promise<boolean> {
    return Number((await this.s.setDrain.run(peerId)).changes) > 0
  }

  /** Forgets a node with its copy rows and remembers that it was removed, so it cannot join again under this identity. */
  async removeNode (peerId: string, now: number): Promise<boolean> {
    return this.db.transaction(async () => {
      const gone = Number((await this.s.deleteNode.run(peerId)).changes) > 0
      if (gone) await this.s.insertRemoved.run(peerId, now)
      return gone
    })
  }

  /** A node's smoothed demand as the last manager it reported to stored it (JSON), if any. */
  async nodeDemand (peerId: string): Promise<string | undefined> {
    return one<{ demand: string | null }>(await this.s.nodeDemand.get(peerId))?.demand ?? undefined
  }

  async setNodeDemand (peerId: string, demand: string): Promise<void> {
    await this.s.setNodeDemand.run(demand, peerId)
  }

  /** Every node's stored demand (JSON), for the manager running the controller. */
  async demandReports (): Promise<Array<{ peerId: string, demand: string }>> {
    return as<{ peer_id: string, demand: string }>(await this.s.demandReports.all()).map(r => ({ peerId: r.peer_id, demand: r.demand }))
  }

  async isRemoved (peerId: string): Promise<boolean> {
    return (await this.s.isRemoved.get(peerId)) != null
  }

  /** Nodes not already dead whose last heartbeat is older than `cutoff` (ms since the epoch). */
  async silentSince (cutoff: number): Promise<NodeRow[]> {
    return as<NodeColumns>(await this.s.silentSince.all(cutoff)).map(nodeRow)
  }

  /** Declares dead, each with its `node-dead` event, every node silent since `cutoff`; returns them as they were. */
  async markSilentDead (cutoff: number, now: number): Promise<NodeRow[]> {
    return this.db.transaction(async () => {
      const silent = await this.silentSince(cutoff)
      for (const n of silent) {
        await this.setNodeState(n.peerId, 'dead')
        await this.events.record({ kind: 'node-dead', node: n.peerId, detail: { silentMs: now - n.lastSeen, was: n.state } })
      }
      return silent
    })
  }
}

function prepare (db: SqlEngine) {
  return {
    getNode: db.prepare('SELECT * FROM nodes WHERE peer_id = ?'),
    listNodes: db.prepare('SELECT * FROM nodes ORDER BY joined_at, peer_id'),
    upsertJoin: db.prepare(`INSERT INTO nodes (peer_id, http, zone, capacity, egress_cap, state, last_seen, joined_at, addrs)
      VALUES (?, ?, ?, ?, ?, 'alive', ?, ?, ?)
      ON CONFLICT (peer_id) DO UPDATE SET http = excluded.http, zone = excluded.zone, capacity = excluded.capacity,
        egress_cap = excluded.egress_cap, last_seen = excluded.last_seen, addrs = excluded.addrs,
        state = CASE WHEN nodes.drain = 1 OR nodes.state = 'draining' THEN 'draining' ELSE 'alive' END`),
    heartbeat: db.prepare(`UPDATE nodes SET http = ?, capacity = ?, used = ?, egress_cap = ?, egress_rate = ?, blobs = ?,
      last_seen = ?, addrs = ?, state = CASE WHEN state != 'dead' THEN state WHEN drain = 1 THEN 'draining' ELSE 'alive' END WHERE peer_id = ?`),
    setNodeAddrs: db.prepare('UPDATE nodes SET addrs = ? WHERE peer_id = ?'),
    nodeDemand: db.prepare('SELECT demand FROM nodes WHERE peer_id = ?'),
    setNodeDemand: db.prepare('UPDATE nodes SET demand = ? WHERE peer_id = ?'),
    demandReports: db.prepare('SELECT peer_id, demand FROM nodes WHERE demand IS NOT NULL'),
    setNodeState: db.prepare('UPDATE nodes SET state = ? WHERE peer_id = ?'),
    setDrain: db.prepare("UPDATE nodes SET drain = 1, state = CASE WHEN state = 'dead' THEN 'dead' ELSE 'draining' END WHERE peer_id = ?"),
    deleteNode: db.prepare('DELETE FROM nodes WHERE peer_id = ?'),
    insertRemoved: db.prepare('INSERT INTO removed_nodes (peer_id, removed_at) VALUES (?, ?) ON CONFLICT (peer_id) DO UPDATE SET removed_at = excluded.removed_at'),
    isRemoved: db.prepare('SELECT 1 FROM removed_nodes WHERE peer_id = ?'),
    silentSince: db.prepare("SELECT * FROM nodes WHERE state != 'dead' AND last_seen < ?")
  }
}
