import { Counter, Gauge, type Registry } from 'prom-client'

export type PublishOutcome = 'ok' | 'unauthorized' | 'bad_input' | 'too_large' | 'capacity' | 'upstream' | 'timeout' | 'aborted' | 'error'
export type OrderKind = 'store' | 'delete'
export type OrderOutcome = 'ok' | 'partial' | 'refused' | 'failed'

/** The manager's own counters, registered on the daemon's registry (never the global one). */
export interface ManagerMetrics {
  publishes: Counter<'outcome'>
  bytesPublished: Counter
  orders: Counter<'kind' | 'outcome'>
  events: Counter<'kind'>
}

/**
 * @param nodesByState read at scrape time, so the gauge is never stale
 */
export function createManagerMetrics (registry: Registry, nodesByState: () => Record<string, number>): ManagerMetrics {
  new Gauge({
    name: 'cdn_manager_nodes',
    help: 'Nodes in the pool by state',
    labelNames: ['state'],
    registers: [registry],
    collect () {
      const counts = nodesByState()
      for (const state of ['alive', 'dead', 'draining']) this.set({ state }, counts[state] ?? 0)
    }
  })
  return {
    publishes: new Counter({ name: 'cdn_manager_publishes_total', help: 'Publish requests by outcome', labelNames: ['outcome'], registers: [registry] }),
    bytesPublished: new Counter({ name: 'cdn_manager_published_bytes_total', help: 'Plaintext bytes of contents that became visible', registers: [registry] }),
    orders: new Counter({ name: 'cdn_manager_orders_total', help: 'Orders sent to nodes by kind and outcome', labelNames: ['kind', 'outcome'], registers: [registry] }),
    events: new Counter({ name: 'cdn_manager_events_total', help: 'Events recorded in the event log by kind', labelNames: ['kind'], registers: [registry] })
  }
}
