/**
 * What operators do to nodes: drain one (the replication controller then
 * moves everything off it), remove one (refused while the pool still needs
 * its copies), and the one-word health shown by `cdn status`.
 *
 * A removed node is told at once (a `remove` order): it stops serving and
 * announcing, wipes its blobs unless kept, and exits. A node that does not
 * hear it (down, paused) is answered ERR_REMOVED on its next join or heartbeat.
 */
import { ConflictError, describeError, UnavailableError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { Catalog, ChunkAtRisk, NodeHoldings, NodeRow } from '../catalog/catalog.ts'
import type { NodeClient } from './node-client.ts'

/** ms the remove order may take; the node's next heartbeat tells it anyway. */
const REMOVE_ORDER_TIMEOUT_MS = 10_000

export interface NodeAdminComponents {
  catalog: Catalog
  /** sends the `remove` order to a removed node */
  nodes?: Pick<NodeClient, 'remove'>
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
  private readonly shutdown = new AbortController()
  private readonly notices = new Set<Promise<void>>()

  constructor (components: NodeAdminComponents, init: NodeAdminInit) {
    this.c = components
    this.init = init
    this.now = components.now ?? Date.now
  }

  /** Asks the pool to move everything off a node; harmless when it already drains. */
  async drain (peerId: string, by: string): Promise<NodeRow> {
    const node = await this.c.catalog.startDrain(peerId, by)
    this.c.logger.info({ node: peerId, by, state: node.state }, 'node set to drain')
    return node
  }

  /**
   * Forgets a node for good (its identity cannot join again) and tells it so.
   * Refused while it holds a copy (confirmed or suspect) of a blob that has
   * fewer than the minimum counted copies elsewhere: drain it first.
   */
  async remove (peerId: string, by: string): Promise<{ peerId: string, removed: true }> {
    const atRisk = await this.c.catalog.removeNodeUnlessNeeded(peerId, this.init.minCopies, by, this.now())
    if (atRisk.length > 0) throw new ConflictError(refusal(peerId, atRisk, this.init.minCopies))
    this.c.onRemoved?.(peerId)
    this.c.logger.info({ node: peerId, by }, 'node removed from the pool')
    this.notify(peerId)
    return { peerId, removed: true }
  }

  /** Waits for remove orders still out (cancelled first). Safe to call twice. */
  async close (): Promise<void> {
    this.shutdown.abort(new UnavailableError('manager stopping'))
    while (this.notices.size > 0) await Promise.allSettled([...this.notices])
  }

  /** Tells the removed node, in the background: the removal stands whether or not it hears. */
  private notify (peerId: string): void {
    const nodes = this.c.nodes
    if (nodes?.remove == null || this.shutdown.signal.aborted) return
    const notice = nodes.remove(peerId, { signal: this.shutdown.signal, timeout: REMOVE_ORDER_TIMEOUT_MS }).then(
      () => { this.c.logger.info({ node: peerId }, 'removed node acknowledged; it leaves') },
      (err: unknown) => { this.c.logger.info({ node: peerId, err: describeError(err) }, 'removed node did not hear the remove order; its next heartbeat tells it') }
    ).finally(() => { this.notices.delete(notice) })
    this.notices.add(notice)
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

/** Says what removing the node would lose, the last copies first. */
function refusal (peerId: string, atRisk: ChunkAtRisk[], minCopies: number): string {
  const contents = new Set(atRisk.map(r => r.content))
  const last = atRisk.filter(r => r.others === 0).length
  const head = last > 0
    ? `node ${peerId} holds the last copies of ${last} blobs`
    : `node ${peerId} holds copies the pool still needs`
  return `${head}: ${atRisk.length} blobs of ${contents.size} contents would have fewer than ${minCopies} confirmed copies without it; drain it first (cdn node drain ${peerId}) and remove it once it is drained`
}
