/**
 * Demand shared between managers through the catalog. A node reports to one
 * manager; the one running the replication controller may be another. So
 * the manager taking a heartbeat folds it into the node's averages as last
 * stored (by whichever manager took the previous one) and stores the result,
 * and the controller adopts every node's stored averages before each round.
 */
import type { Logger } from '../../core/log.ts'
import type { ContentLoad } from '../../core/wire.ts'
import type { Catalog } from '../catalog/catalog.ts'
import type { DemandTracker, NodeDemandState } from './demand-tracker.ts'

export interface SharedDemandComponents {
  catalog: Pick<Catalog, 'nodeDemand' | 'setNodeDemand' | 'demandReports'>
  tracker: DemandTracker
  logger: Logger
}

export class SharedDemand {
  private readonly c: SharedDemandComponents

  constructor (components: SharedDemandComponents) {
    this.c = components
  }

  /** Folds one heartbeat's (already capped) figures into the node's stored averages. */
  async record (node: string, report: { egressRate: number, contents: Record<string, ContentLoad> }, now: number): Promise<void> {
    const stored = this.parse(node, await this.c.catalog.nodeDemand(node))
    if (stored != null) this.c.tracker.adopt(node, stored)
    this.c.tracker.record(node, report, now)
    const state = this.c.tracker.exportNode(node)
    if (state != null) await this.c.catalog.setNodeDemand(node, JSON.stringify(state))
  }

  /** Adopts every node's stored averages that are newer than what this manager folded itself. */
  async refresh (): Promise<void> {
    for (const r of await this.c.catalog.demandReports()) {
      const state = this.parse(r.peerId, r.demand)
      if (state != null) this.c.tracker.adopt(r.peerId, state)
    }
  }

  private parse (node: string, json: string | undefined): NodeDemandState | undefined {
    if (json == null) return undefined
    try {
      const v = JSON.parse(json) as NodeDemandState
      if (typeof v.at === 'number' && typeof v.egressRate === 'number' && v.contents != null && typeof v.contents === 'object') return v
    } catch {}
    // Written by this code only; a damaged row is learnt again from the next heartbeat.
    this.c.logger.warn({ node }, 'stored demand of a node is unreadable; ignoring it')
    return undefined
  }
}
