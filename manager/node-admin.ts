/**
 * What operators do to nodes: drain one (the replication controller then
 * moves everything off it), remove one (refused while the pool still needs
 * its copies), and the one-word health shown by `cdn status`.
 */
import { ConflictError, NotFoundError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import type { Catalog, NodeHoldings, NodeRow } from './catalog.ts'

export interface NodeAdminComponents {
  catalog: Catalog
  logger: Logger
  /** told when a node is removed (e.g. to drop its demand figures) */
  onRemoved?: (peerId: string) => void
  /** ms since the epoch (default Date.now) */
  now?: () => number
}

export interface NodeAdminInit {
  /** confirmed copies of every chunk that must remain on other live nodes for a removal */
  minCopies: number
  /** for health: a node above this share of its capacity is `disk-high` */
  diskHighWater: number
  /** for health: a node above this share of its egress cap is `egress-high` */
  egressHighWater: number
  /** for health: a node silent for two heartbeats is `late` */
  heartbeatMs: number
}

/** dead, drained (draining and empty), draining, late (missed a heartbeat), disk-high, egress-high, ok */
export type NodeHealth = 'dead' | 'drained' | 'draining' | 'late' | 'disk-high' | 'egress-high' | 'ok'

export class NodeAdmin {
  private readonly c: NodeAdminComponents
  private readonly init: NodeAdminInit
  private readonly now: () => number

  constructor (components: NodeAdminComponents, init: NodeAdminInit) {
    this.c = components
    this.init = init
    this.now = components.now ?? Date.now
  }

  /** Asks the pool to move everything off a node; harmless when it already drains. */
  drain (peerId: string, by: string): NodeRow {
    const { catalog } = this.c
    const node = catalog.db.transaction(() => {
      const before = catalog.getNode(peerId)
      if (before == null) throw new NotFoundError(`no node ${peerId} in the pool`)
      if (!before.drain) {
        catalog.setDrain(peerId)
        const holdings = catalog.holdingsByNode().get(peerId)
        catalog.recordEvent({ kind: 'node-draining', node: peerId, detail: { by, copies: holdings?.copies ?? 0, contents: holdings?.contents ?? 0, state: before.state } })
      }
      return catalog.getNode(peerId)!
    })
    this.c.logger.info({ node: peerId, by, state: node.state }, 'node set to drain')
    return node
  }

  /**
   * Forgets a node for good (its identity cannot join again). Refused while
   * it holds a confirmed copy without which some blob would have fewer than
   * the minimum confirmed copies on live nodes: drain it first.
   */
  remove (peerId: string, by: string): { peerId: string, removed: true } {
    const { catalog } = this.c
    catalog.db.transaction(() => {
      const node = catalog.getNode(peerId)
      if (node == null) throw new NotFoundError(`no node ${peerId} in the pool`)
      const atRisk = catalog.chunksAtRiskWithout(peerId, this.init.minCopies)
      if (atRisk.length > 0) {
        const contents = new Set(atRisk.map(r => r.content))
        throw new ConflictError(`node ${peerId} holds copies the pool still needs: ${atRisk.length} blobs of ${contents.size} contents would have fewer than ${this.init.minCopies} confirmed copies without it; drain it first (cdn node drain ${peerId})`)
      }
      const holdings = catalog.holdingsByNode().get(peerId)
      catalog.removeNode(peerId, this.now())
      catalog.recordEvent({ kind: 'node-removed', node: peerId, detail: { by, state: node.state, copies: holdings?.copies ?? 0 } })
    })
    this.c.onRemoved?.(peerId)
    this.c.logger.info({ node: peerId, by }, 'node removed from the pool')
    return { peerId, removed: true }
  }

  health (n: NodeRow, holdings: NodeHoldings | undefined): NodeHealth {
    if (n.state === 'dead') return 'dead'
    if (n.state === 'draining') return (holdings?.copies ?? 0) === 0 ? 'drained' : 'draining'
    if (this.now() - n.lastSeen > 2 * this.init.heartbeatMs) return 'late'
    if (n.capacity > 0 && n.used > this.init.diskHighWater * n.capacity) return 'disk-high'
    if (n.egressCap != null && n.egressCap > 0 && n.egressRate > this.init.egressHighWater * n.egressCap) return 'egress-high'
    return 'ok'
  }
}
