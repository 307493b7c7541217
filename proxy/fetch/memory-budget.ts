/**
 * One memory budget shared by every read of a fetch engine: the blobs in
 * flight and the decrypted chunks waiting in reorder buffers. Each read's
 * window already bounds that read; this bounds them all together, so a
 * hundred browser tabs cannot take a hundred windows of memory.
 *
 * Reads share it fairly without idling it: a read may use memory nobody
 * else wants, but a read below its fair share (the budget divided among the
 * open reads) that finds the budget full takes memory back from the reads
 * furthest above theirs (they drop the requests and buffered chunks furthest
 * ahead of their playheads, to fetch again later). A read holding nothing
 * always gets one chunk, so no read ever stalls; the bound is exceeded only
 * when more reads are open than the budget holds chunks.
 */
export interface BudgetStats {
  /** bytes held right now */
  bytes: number
  maxBytes: number
  /** most bytes ever held at once */
  peak: number
  /** reads holding an account */
  accounts: number
  /** reads waiting for memory to free up */
  waiting: number
  /** bytes taken back from reads above their fair share, in all */
  reclaimed: number
}

/**
 * Gives back up to `bytes` (by calling release on its account) and says how
 * much it gave; never the chunk at the read's playhead.
 */
export type Reclaimer = (bytes: number) => number

export class MemoryBudget {
  readonly maxBytes: number
  private used = 0
  private peakBytes = 0
  private reclaimedBytes = 0
  private readonly accounts = new Set<BudgetAccount>()
  private readonly waiters = new Map<BudgetAccount, () => void>()
  private wakeQueued = false

  /** @param maxBytes bytes all reads together may hold (Infinity or 0: no bound) */
  constructor (maxBytes: number) {
    this.maxBytes = maxBytes > 0 ? maxBytes : Infinity
  }

  /** An account for one read; close it when the read ends, which returns all it held. */
  account (reclaim?: Reclaimer): BudgetAccount {
    const a = new BudgetAccount(this, reclaim)
    this.accounts.add(a)
    return a
  }

  stats (): BudgetStats {
    return { bytes: this.used, maxBytes: this.maxBytes, peak: this.peakBytes, accounts: this.accounts.size, waiting: this.waiters.size, reclaimed: this.reclaimedBytes }
  }

  /** @internal used by BudgetAccount */
  take (a: BudgetAccount, bytes: number): boolean {
    const share = this.maxBytes / Math.max(1, this.accounts.size)
    const withinShare = a.held === 0 || a.held + bytes <= share
    if (this.used + bytes > this.maxBytes && withinShare) this.reclaimFor(a, this.used + bytes - this.maxBytes, share)
    if (a.held > 0) {
      if (this.used + bytes > this.maxBytes) return false
      // Above its share, a read takes only what nobody is waiting for.
      if (!withinShare && this.othersWaiting(a)) return false
    }
    this.used += bytes
    if (this.used > this.peakBytes) this.peakBytes = this.used
    return true
  }

  /** @internal */
  give (bytes: number): void {
    this.used = Math.max(0, this.used - bytes)
    this.wakeWaiters()
  }

  /** @internal */
  wait (a: BudgetAccount, wake: () => void): void {
    this.waiters.set(a, wake)
  }

  /** @internal */
  leave (a: BudgetAccount): void {
    this.accounts.delete(a)
    this.waiters.delete(a)
    // One read fewer: the others' fair shares just grew.
    this.wakeWaiters()
  }

  private othersWaiting (a: BudgetAccount): boolean {
    for (const w of this.waiters.keys()) if (w !== a) return true
    return false
  }

  /** Takes memory back from the reads furthest above their fair share, most excess first. */
  private reclaimFor (requester: BudgetAccount, need: number, share: number): void {
    const over = [...this.accounts].filter(x => x !== requester && x.held > share).sort((x, y) => y.held - x.held)
    for (const victim of over) {
      if (need <= 0) return
      const freed = victim.giveBack(Math.min(need, victim.held - share))
      this.reclaimedBytes += freed
      need -= freed
    }
  }

  /**
   * Waiters are woken in a microtask, not inside the release: a release runs
   * deep in another read's bookkeeping, and a woken read starts requests.
   * Oldest waiter first, so reads take freed memory in the order they asked.
   */
  private wakeWaiters (): void {
    if (this.waiters.size === 0 || this.wakeQueued) return
    this.wakeQueued = true
    queueMicrotask(() => {
      this.wakeQueued = false
      const woken = [...this.waiters.values()]
      this.waiters.clear()
      for (const wake of woken) wake()
    })
  }
}

/** One read's share of a MemoryBudget. */
export class BudgetAccount {
  held = 0
  private readonly budget: MemoryBudget
  private readonly reclaim: Reclaimer | undefined
  private closed = false

  constructor (budget: MemoryBudget, reclaim: Reclaimer | undefined) {
    this.budget = budget
    this.reclaim = reclaim
  }

  /** Takes `bytes` if the budget allows (always when this account holds nothing). */
  tryTake (bytes: number): boolean {
    if (this.closed || !this.budget.take(this, bytes)) return false
    this.held += bytes
    return true
  }

  release (bytes: number): void {
    if (this.closed) return
    const n = Math.min(bytes, this.held)
    this.held -= n
    this.budget.give(n)
  }

  /** Calls `wake` once, after memory was released somewhere; a later call replaces an earlier one. */
  whenFree (wake: () => void): void {
    if (!this.closed) this.budget.wait(this, wake)
  }

  /** @internal asked by the budget to give back up to `bytes` for a read below its share */
  giveBack (bytes: number): number {
    if (this.closed || this.reclaim == null) return 0
    return this.reclaim(bytes)
  }

  /** Returns everything held; later calls do nothing. */
  close (): void {
    if (this.closed) return
    this.closed = true
    const n = this.held
    this.held = 0
    this.budget.leave(this)
    if (n > 0) this.budget.give(n)
  }
}
