/**
 * The replication controller: a chore that, every round, reads the pool
 * afresh (catalog, heartbeats, demand), asks the pure policy what to do
 * (manager/replication-policy.ts) and hands the copies and deletes to the
 * action runner; expired contents go through the ordinary delete path.
 *
 * Rounds keep no state of their own beyond the move budget: the policy sees
 * what is confirmed, so "copy, confirm, then delete" happens over successive
 * rounds, and a crash between two rounds loses nothing.
 */
import { describeError, UnavailableError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import { Chore } from '../../core/chore.ts'
import type { ReplicationMetrics } from '../metrics.ts'
import { MoveBudget } from './move-budget.ts'
import type { PoolSnapshot } from './pool-snapshot.ts'
import { DEFAULT_POLICY, reconcile, type CopyAction, type DeleteAction, type PolicyReport, type PolicySettings } from './replication-policy.ts'

export interface ReplicationControllerComponents {
  /** the pool now (nodes, contents, copies, demand) */
  snapshot: (now: number, uncappedEgress: number) => Promise<PoolSnapshot>
  runner: {
    submit: (actions: Array<CopyAction | DeleteAction>) => void
    readonly pending: number
  }
  /** deletes an expired content everywhere (the publisher's delete path) */
  expire: (contentId: string, signal: AbortSignal) => Promise<void>
  /** turns copies a crash left pending into suspect ones, once, before the first round */
  recover?: () => Promise<number>
  metrics?: ReplicationMetrics
  /** told of every round's snapshot and decisions (the console's history) */
  onRound?: (at: number, snapshot: PoolSnapshot, report: PolicyReport, budget: number) => void
  logger: Logger
  /** ms since the epoch (default Date.now) */
  now?: () => number
}

export interface ReplicationControllerInit {
  /** ms between rounds (default 10 s) */
  intervalMs?: number
  /** share of the pool's egress its own moves may use (default 0.2) */
  moveShare?: number
  /** policy settings; the move budget is computed per round */
  policy?: Partial<Omit<PolicySettings, 'moveBudget'>>
}

/** What one round decided, for logs, tests and the health endpoint. */
export interface RoundSummary {
  at: number
  copies: number
  deletes: number
  expired: number
  underReplicated: number
  deferred: number
  wanted: number
  actual: number
  budget: number
}

export class ReplicationController {
  private readonly c: ReplicationControllerComponents
  private readonly log: Logger
  private readonly now: () => number
  readonly intervalMs: number
  readonly moveShare: number
  readonly settings: Omit<PolicySettings, 'moveBudget'>
  private readonly budget = new MoveBudget()
  private readonly chore: Chore
  private readonly expiring = new Map<string, Promise<void>>()
  private readonly shutdown = new AbortController()
  private recovered = false
  last?: RoundSummary

  constructor (components: ReplicationControllerComponents, init: ReplicationControllerInit = {}) {
    this.c = components
    this.log = components.logger
    this.now = components.now ?? Date.now
    this.intervalMs = init.intervalMs ?? 10_000
    this.moveShare = init.moveShare ?? 0.2
    const { moveBudget: _ignored, ...defaults } = DEFAULT_POLICY
    this.settings = { ...defaults, ...init.policy }
    this.chore = new Chore('replication', this.intervalMs, async (signal) => { await this.runOnce(signal) }, this.log)
  }

  start (): void {
    this.chore.start()
  }

  /** Stops the rounds and waits for the one in progress and any expiry under way. */
  async close (): Promise<void> {
    this.shutdown.abort(new UnavailableError('replication stopping'))
    await this.chore.close()
    await Promise.allSettled([...this.expiring.values()])
  }

  /** One round: snapshot, decide, dispatch. The actions run on in the background. */
  async runOnce (signal: AbortSignal = this.shutdown.signal): Promise<RoundSummary> {
    if (!this.recovered) {
      this.recovered = true
      const n = await this.c.recover?.() ?? 0
      if (n > 0) this.log.info({ copies: n }, 'copies of moves interrupted by a restart are suspect until checked')
    }
    const now = this.now()
    let report: PolicyReport
    let snapshot: PoolSnapshot
    let budget: number
    try {
      snapshot = await this.c.snapshot(now, this.settings.uncappedEgress)
      budget = this.budget.available(this.moveShare * snapshot.totalEgress, snapshot.largestBlob)
      report = reconcile({ nodes: snapshot.nodes, contents: snapshot.contents, settings: { ...this.settings, moveBudget: budget }, now })
    } catch (err) {
      this.c.metrics?.rounds.inc({ outcome: 'failed' })
      throw err
    }

    const moves: Array<CopyAction | DeleteAction> = []
    let planned = 0
    let expired = 0
    for (const a of report.actions) {
      if (a.kind === 'expire') {
        if (this.startExpiry(a.content, signal)) expired++
        continue
      }
      if (a.kind === 'copy') planned += a.size
      moves.push(a)
    }
    this.budget.spend(planned)
    this.c.runner.submit(moves)

    const summary: RoundSummary = {
      at: now,
      copies: moves.filter(a => a.kind === 'copy').length,
      deletes: moves.filter(a => a.kind === 'delete').length,
      expired,
      underReplicated: report.underReplicated,
      deferred: report.deferred,
      ...countCopies(snapshot, report),
      budget
    }
    this.last = summary
    this.c.onRound?.(now, snapshot, report, budget)
    const m = this.c.metrics
    if (m != null) {
      m.rounds.inc({ outcome: 'ok' })
      m.copiesWanted.set(summary.wanted)
      m.copiesActual.set(summary.actual)
      m.underReplicated.set(summary.underReplicated)
      m.deferred.set(summary.deferred)
    }
    if (moves.length > 0 || expired > 0) {
      this.log.info({ copies: summary.copies, deletes: summary.deletes, expired, reasons: reasonCounts(moves), underReplicated: summary.underReplicated, deferred: summary.deferred, budget: Math.round(budget), pending: this.c.runner.pending }, 'reconcile round')
    } else {
      this.log.debug({ underReplicated: summary.underReplicated, deferred: summary.deferred }, 'reconcile round: nothing to do')
    }
    return summary
  }

  /** Deletes an expired content in the background (a slow node must not hold up repairs); false when already under way. */
  private startExpiry (content: string, signal: AbortSignal): boolean {
    if (this.expiring.has(content)) return false
    const task = (async () => {
      try {
        await this.c.expire(content, signal)
        this.c.metrics?.actions.inc({ kind: 'expire', reason: 'ttl', outcome: 'ok' })
        this.log.info({ content }, 'expired content deleted')
      } catch (err) {
        this.c.metrics?.actions.inc({ kind: 'expire', reason: 'ttl', outcome: 'failed' })
        if (!signal.aborted) this.log.warn({ content, err: describeError(err) }, 'deleting an expired content failed; the next round tries again')
      } finally {
        this.expiring.delete(content)
      }
    })()
    this.expiring.set(content, task)
    return true
  }
}

/** Copies wanted and healthy copies present, summed over every chunk. */
function countCopies (snapshot: PoolSnapshot, report: PolicyReport): { wanted: number, actual: number } {
  const live = new Set(snapshot.nodes.filter(n => n.state !== 'dead').map(n => n.peerId))
  let wanted = 0
  let actual = 0
  for (const c of snapshot.contents) {
    const w = report.wanted.get(c.id) ?? 0
    for (const ch of c.chunks) {
      wanted += w
      const bad = new Set(ch.bad ?? [])
      actual += ch.holders.filter(h => live.has(h) && !bad.has(h)).length
    }
  }
  return { wanted, actual }
}

function reasonCounts (moves: Array<CopyAction | DeleteAction>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const a of moves) {
    const key = `${a.kind}:${a.reason}`
    out[key] = (out[key] ?? 0) + 1
  }
  return out
}
