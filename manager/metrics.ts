import { Counter, Gauge, type Registry } from 'prom-client'

export type PublishOutcome = 'ok' | 'unauthorized' | 'bad_input' | 'too_large' | 'capacity' | 'upstream' | 'timeout' | 'aborted' | 'error'
export type OrderKind = 'store' | 'delete' | 'remove'
export type OrderOutcome = 'ok' | 'partial' | 'refused' | 'failed'

/** The manager's own counters, registered on the daemon's registry (never the global one). */
export interface ManagerMetrics {
  publishes: Counter<'outcome'>
  bytesPublished: Counter
  bytesReceived: Counter
  orders: Counter<'kind' | 'outcome'>
  events: Counter<'kind'>
}

/**
 * @param nodesByState read at scrape time, so the gauge is never stale
 */
export function createManagerMetrics (registry: Registry, nodesByState: () => Promise<Record<string, number>>): ManagerMetrics {
  new Gauge({
    name: 'cdn_manager_nodes',
    help: 'Nodes in the pool by state',
    labelNames: ['state'],
    registers: [registry],
    async collect () {
      const counts = await nodesByState()
      for (const state of ['alive', 'dead', 'draining']) this.set({ state }, counts[state] ?? 0)
    }
  })
  return {
    publishes: new Counter({ name: 'cdn_manager_publishes_total', help: 'Publish requests by outcome', labelNames: ['outcome'], registers: [registry] }),
    bytesReceived: new Counter({ name: 'cdn_manager_upload_bytes_total', help: 'Bytes publishers sent: upload bodies (plaintext), chunks and plans of upload sessions, published or not', registers: [registry] }),
    bytesPublished: new Counter({ name: 'cdn_manager_published_bytes_total', help: 'Plaintext bytes of contents that became visible', registers: [registry] }),
    orders: new Counter({ name: 'cdn_manager_orders_total', help: 'Orders sent to nodes by kind and outcome', labelNames: ['kind', 'outcome'], registers: [registry] }),
    events: new Counter({ name: 'cdn_manager_events_total', help: 'Events recorded in the event log by kind', labelNames: ['kind'], registers: [registry] })
  }
}

/** The replication controller's figures: what it did, and how the pool stands against what it wants. */
export interface ReplicationMetrics {
  /** actions finished, by kind (copy, delete, expire), the policy's reason and outcome */
  actions: Counter<'kind' | 'reason' | 'outcome'>
  bytesMoved: Counter<'reason'>
  /** deletes the last check before sending refused: they would have left too few copies */
  deletesRefused: Counter<'reason'>
  copiesWanted: Gauge
  copiesActual: Gauge
  underReplicated: Gauge
  deferred: Gauge
  rounds: Counter<'outcome'>
}

export function createReplicationMetrics (registry: Registry): ReplicationMetrics {
  return {
    actions: new Counter({ name: 'cdn_manager_actions_total', help: 'Replication actions by kind, reason and outcome', labelNames: ['kind', 'reason', 'outcome'], registers: [registry] }),
    bytesMoved: new Counter({ name: 'cdn_manager_bytes_moved_total', help: 'Bytes the pool copied for its own moves, by reason', labelNames: ['reason'], registers: [registry] }),
    deletesRefused: new Counter({ name: 'cdn_manager_deletes_refused_total', help: 'Deletes refused by the last invariant check, by reason', labelNames: ['reason'], registers: [registry] }),
    copiesWanted: new Gauge({ name: 'cdn_manager_copies_wanted', help: 'Copies the controller wants, summed over the chunks of visible contents', registers: [registry] }),
    copiesActual: new Gauge({ name: 'cdn_manager_copies_actual', help: 'Healthy confirmed copies, summed over the chunks of visible contents', registers: [registry] }),
    underReplicated: new Gauge({ name: 'cdn_manager_under_replicated_chunks', help: 'Chunks with fewer healthy copies than their content\'s R', registers: [registry] }),
    deferred: new Gauge({ name: 'cdn_manager_deferred_copies', help: 'Copies the last round needed but could not place (move budget, no room)', registers: [registry] }),
    rounds: new Counter({ name: 'cdn_manager_reconcile_rounds_total', help: 'Reconcile rounds by outcome', labelNames: ['outcome'], registers: [registry] })
  }
}

/** The action runner's outcomes, counted in the replication metrics. */
export function actionMetrics (m: ReplicationMetrics): { onAction: (kind: 'copy' | 'delete', reason: string, outcome: string) => void, onBytesMoved: (reason: string, bytes: number) => void } {
  return {
    onAction: (kind, reason, outcome) => {
      m.actions.inc({ kind, reason, outcome })
      if (outcome === 'refused') m.deletesRefused.inc({ reason })
    },
    onBytesMoved: (reason, bytes) => { m.bytesMoved.inc({ reason }, bytes) }
  }
}
