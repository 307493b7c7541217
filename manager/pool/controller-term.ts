/**
 * What a manager does while it holds the controller lease, and only then:
 * the replication rounds (with the orders they send), the liveness sweep
 * that declares silent nodes dead, the deletes owed to nodes, and the
 * cleanup of uploads whose manager died. Everything here is built anew for
 * each term and stopped when the term's signal aborts, so a manager that
 * loses the lease stops acting before another can take it.
 */
import { Chore } from '../../core/chore.ts'
import { CdnError, describeError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { Catalog } from '../catalog/catalog.ts'
import type { LeaseStore } from '../catalog/leases.ts'
import type { ReplicationMetrics } from '../metrics.ts'
import type { NodeClient } from '../nodes/node-client.ts'
import type { NodeRegistry } from '../nodes/node-registry.ts'
import type { ContentDeleter } from '../publish/delete.ts'
import type { SessionPublisher } from '../publish/session-publisher.ts'
import type { Publisher } from '../publish/publish.ts'
import { ActionRunner, type ActionRunnerMetrics } from '../replication/action-runner.ts'
import type { DemandTracker } from '../replication/demand-tracker.ts'
import { PoolSnapshotter, type PoolSnapshot } from '../replication/pool-snapshot.ts'
import { ReplicationController, type ReplicationControllerInit } from '../replication/replication-controller.ts'
import type { PolicyReport } from '../replication/replication-policy.ts'
import type { SharedDemand } from '../replication/shared-demand.ts'
import { CONTROLLER_LEASE, type LeaseTerm } from './controller-lease.ts'

/** A write of a controller whose term is over was refused. */
export class LeaseLostError extends CdnError {
  constructor () { super('this manager no longer holds the controller lease', 'ERR_LEASE_LOST', 503) }
}

export interface ControllerTermComponents {
  catalog: Catalog
  leases: Pick<LeaseStore, 'holds'>
  /** this manager's peer id, the lease's holder */
  self: string
  nodes: NodeClient
  registry: Pick<NodeRegistry, 'sweep'>
  tracker: DemandTracker
  demand: Pick<SharedDemand, 'refresh'>
  deleter: Pick<ContentDeleter, 'delete' | 'resumePending'>
  publisher: Pick<Publisher, 'cleanupOrphaned'>
  /** upload sessions, whose idle ones the controller discards (absent: none are served) */
  sessions?: Pick<SessionPublisher, 'expire'>
  manifestUrl: (contentId: string) => string
  /** told each round's snapshot first (repair that cannot happen is reported) */
  observe: (snapshot: PoolSnapshot, now: number) => Promise<void>
  onRound?: (at: number, snapshot: PoolSnapshot, report: PolicyReport, budget: number) => void
  metrics: { replication: ReplicationMetrics, actions: ActionRunnerMetrics }
  logger: Logger
}

export interface ControllerTermInit extends ReplicationControllerInit {
  minCopies: number
  /** ms between liveness sweeps */
  sweepMs: number
  /** a manager silent this long is dead: its uploads are collected */
  managerDeadMs: number
}

export interface ControllerTerm {
  controller: ReplicationController
  runner: ActionRunner
  /** settles once every duty of the term stopped */
  closed: Promise<void>
}

export function startControllerTerm (c: ControllerTermComponents, init: ControllerTermInit, term: LeaseTerm): ControllerTerm {
  const log = c.logger.child({ epoch: term.epoch })
  const runner = new ActionRunner({
    catalog: c.catalog,
    nodes: c.nodes,
    manifestUrl: c.manifestUrl,
    logger: log.child({ part: 'moves' }),
    metrics: c.metrics.actions,
    fence: async () => { if (term.signal.aborted || !await c.leases.holds(CONTROLLER_LEASE, c.self, term.epoch)) throw new LeaseLostError() }
  }, { minCopies: init.minCopies })
  const snapshots = new PoolSnapshotter({ catalog: c.catalog, demand: c.tracker, moves: runner })
  const controller = new ReplicationController({
    snapshot: async (now, uncapped) => {
      await c.demand.refresh()
      const snapshot = await snapshots.take(now, uncapped)
      await c.observe(snapshot, now)
      return snapshot
    },
    runner,
    expire: async (id, signal) => { await c.deleter.delete(id, 'expiry', { signal, event: 'content-expired' }) },
    recover: async () => await c.catalog.suspectPendingCopiesOfVisible(),
    metrics: c.metrics.replication,
    onRound: c.onRound,
    logger: log.child({ part: 'replication' })
  }, init)
  const sweeps = new Chore('liveness', init.sweepMs, async () => { await c.registry.sweep() }, log)
  const orphans = new Chore('orphaned uploads', init.intervalMs ?? 10_000, async () => {
    const n = await c.publisher.cleanupOrphaned(init.managerDeadMs)
    if (n > 0) log.info({ uploads: n }, 'cleaned up uploads of a manager that died')
    const idle = await c.sessions?.expire() ?? 0
    if (idle > 0) log.info({ uploads: idle }, 'discarded idle upload sessions')
  }, log)

  // The new controller acts at once: the pool waited for a round since the last holder died.
  void controller.runOnce().catch((err: unknown) => {
    if (!term.signal.aborted) log.error({ err: describeError(err) }, 'first replication round of the term failed')
  }).finally(() => { if (!term.signal.aborted) controller.start() })
  sweeps.start()
  orphans.start()
  void c.deleter.resumePending().then(
    n => { if (n > 0) log.info({ orders: n }, 'finished deletes owed to nodes') },
    err => { if (!term.signal.aborted) log.error({ err: describeError(err) }, 'resuming owed deletes failed') }
  )
  const closed = new Promise<void>(resolve => {
    term.signal.addEventListener('abort', () => {
      void Promise.allSettled([controller.close(), runner.close(), sweeps.close(), orphans.close()]).then(() => { resolve() })
    }, { once: true })
  })
  return { controller, runner, closed }
}
