/**
 * Holds the controller lease for this manager, so that exactly one manager
 * of a pool runs the replication controller at a time.
 *
 * Every `tickMs` it takes or renews the lease for `ttlMs` (the deadline is
 * on the database's clock). A term begins when the lease is taken anew and
 * ends, aborting its signal, when another manager holds it or when this one
 * could not renew it in time: a term counts itself over `marginMs` before
 * the deadline its last renewal could have set, measured on this host's
 * monotonic clock from before that renewal was sent. So a term always ends
 * here before another manager can take the lease, even when the database is
 * slow or unreachable, and a dead holder's lease is taken over within
 * `ttlMs + tickMs`.
 */
import { describeError, UnavailableError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { LeaseStore } from '../catalog/leases.ts'

/** The lease's name in the catalog. */
export const CONTROLLER_LEASE = 'controller'

/** One holding of the lease, from its taking to its end. */
export interface LeaseTerm {
  /** the fencing token: greater for every new holder */
  epoch: number
  /** aborted when the term ends */
  signal: AbortSignal
}

export interface ControllerLeaseComponents {
  leases: Pick<LeaseStore, 'acquire' | 'release'>
  /** this manager's peer id */
  holder: string
  /** a term began: start the duties; they stop when its signal aborts */
  onTerm: (term: LeaseTerm) => void
  logger: Logger
  /** a monotonic clock in ms (default performance.now) */
  clock?: () => number
}

export interface ControllerLeaseInit {
  ttlMs: number
  /** default ttlMs / 3 */
  tickMs?: number
  /** default ttlMs / 4 */
  marginMs?: number
}

export class ControllerLease {
  private readonly c: ControllerLeaseComponents
  private readonly log: Logger
  private readonly clock: () => number
  readonly ttlMs: number
  readonly tickMs: number
  private readonly marginMs: number
  private term?: { epoch: number, controller: AbortController, validUntil: number }
  private ticker?: NodeJS.Timeout
  private expiry?: NodeJS.Timeout
  private ticking?: Promise<void>
  private stopped = false

  constructor (components: ControllerLeaseComponents, init: ControllerLeaseInit) {
    this.c = components
    this.log = components.logger
    this.clock = components.clock ?? (() => performance.now())
    this.ttlMs = init.ttlMs
    this.tickMs = init.tickMs ?? Math.max(10, Math.floor(init.ttlMs / 3))
    this.marginMs = init.marginMs ?? Math.floor(init.ttlMs / 4)
    if (!(this.tickMs + this.marginMs < this.ttlMs)) throw new RangeError('a lease must be renewed well before it expires: tickMs + marginMs < ttlMs')
  }

  /** The epoch of the term in progress, if this manager holds the lease. */
  get epoch (): number | undefined {
    return this.term?.epoch
  }

  start (): void {
    if (this.ticker != null || this.stopped) return
    const loop = (): void => {
      this.ticking = this.tick().finally(() => {
        if (!this.stopped) this.ticker = setTimeout(loop, this.tickMs)
      })
    }
    this.ticker = setTimeout(loop, 0)
  }

  /** Takes or renews the lease once (also used by tests). */
  async tick (): Promise<void> {
    const sentAt = this.clock()
    let grant
    try {
      grant = await this.c.leases.acquire(CONTROLLER_LEASE, this.c.holder, this.ttlMs)
    } catch (err) {
      // The expiry timer ends the term if this goes on.
      this.log.warn({ err: describeError(err) }, 'could not renew the controller lease')
      return
    }
    if (this.stopped) return
    if (grant == null) {
      if (this.term != null) this.end('another manager holds the controller lease')
      return
    }
    if (this.term != null && this.term.epoch !== grant.epoch) this.end('the controller lease lapsed before it was renewed')
    const validUntil = sentAt + this.ttlMs - this.marginMs
    // A renewal that took longer than the term could last is no ground to act on: the next tick tries again.
    if (validUntil <= this.clock()) return
    if (this.term == null) this.begin(grant.epoch, validUntil)
    else this.term.validUntil = validUntil
    this.armExpiry()
  }

  /** Stops renewing, ends the term and hands the lease over at once. */
  async stop (): Promise<void> {
    this.stopped = true
    if (this.ticker != null) clearTimeout(this.ticker)
    await this.ticking
    const epoch = this.term?.epoch
    this.end('manager stopping')
    if (epoch == null) return
    try {
      await this.c.leases.release(CONTROLLER_LEASE, this.c.holder, epoch)
    } catch (err) {
      this.log.warn({ err: describeError(err) }, 'could not hand the controller lease over; another manager takes it when it expires')
    }
  }

  private begin (epoch: number, validUntil: number): void {
    const controller = new AbortController()
    this.term = { epoch, controller, validUntil }
    this.log.info({ epoch, ttlMs: this.ttlMs }, 'took the controller lease: this manager runs the replication controller')
    this.c.onTerm({ epoch, signal: controller.signal })
  }

  private end (why: string): void {
    const term = this.term
    if (term == null) return
    this.term = undefined
    if (this.expiry != null) clearTimeout(this.expiry)
    this.log.info({ epoch: term.epoch, why }, 'controller term over')
    term.controller.abort(new UnavailableError(why))
  }

  private armExpiry (): void {
    if (this.expiry != null) clearTimeout(this.expiry)
    const term = this.term
    if (term == null) return
    this.expiry = setTimeout(() => {
      if (this.term === term) this.end('could not renew the controller lease in time')
    }, Math.max(0, term.validUntil - this.clock()))
  }
}
