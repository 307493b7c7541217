/**
 * How many bytes the pool may copy for its own moves (repair, drain,
 * migration, mirrors) in one reconcile round: a token bucket filled at a
 * share of the pool's egress. Unspent allowance carries over up to a burst,
 * so a quiet minute lets a repair start at full speed, but the average never
 * exceeds the share. The rate is given at each round because the pool's
 * egress changes as nodes join, leave and die.
 */
export interface MoveBudgetInit {
  /** seconds of allowance the bucket holds at most (default 2) */
  burstSeconds?: number
  /** ms clock (default performance.now), injectable for tests */
  now?: () => number
}

export class MoveBudget {
  private readonly burstSeconds: number
  private readonly now: () => number
  private tokens: number | undefined
  private last: number

  constructor (init: MoveBudgetInit = {}) {
    this.burstSeconds = init.burstSeconds ?? 2
    this.now = init.now ?? (() => performance.now())
    this.last = this.now()
  }

  /**
   * Bytes that may be moved now, at `rate` bytes/s. The bucket always holds
   * at least `minBurst` (the largest blob), or a share too small for one
   * chunk would never move anything.
   */
  available (rate: number, minBurst = 0): number {
    const now = this.now()
    const burst = Math.max(rate * this.burstSeconds, minBurst)
    // A fresh bucket starts full: the first round after a start may repair at once.
    this.tokens = Math.min(burst, (this.tokens ?? burst) + Math.max(0, now - this.last) * rate / 1000)
    this.last = now
    return Math.max(0, this.tokens)
  }

  /** Takes what a round planned to move. */
  spend (bytes: number): void {
    this.tokens = (this.tokens ?? 0) - bytes
  }
}
