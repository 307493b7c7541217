/**
 * Deadlines of the chunk responses in progress, all watched by one coarse
 * ticker instead of a timer each: at hundreds of responses a second, a
 * 60-second timer per response kept thousands of timers (and the responses
 * they point to) alive. A deadline fires at most one tick late; the ticker
 * runs only while a deadline is pending and never keeps the process alive.
 */
export interface ResponseDeadlinesInit {
  /** ms from a response's start to its cut */
  deadlineMs: number
  /** ms between checks (default: a quarter of the deadline, at most 1 s) */
  tickMs?: number
  now?: () => number
}

interface Entry { at: number, onExpired: () => void }

export class ResponseDeadlines {
  private readonly deadlineMs: number
  private readonly tickMs: number
  private readonly now: () => number
  private readonly entries = new Set<Entry>()
  private timer: NodeJS.Timeout | undefined

  constructor (init: ResponseDeadlinesInit) {
    this.deadlineMs = init.deadlineMs
    this.tickMs = init.tickMs ?? Math.max(1, Math.min(1000, Math.floor(init.deadlineMs / 4)))
    this.now = init.now ?? (() => performance.now())
  }

  /** Calls `onExpired` once the deadline has passed, unless the returned function is called first. */
  watch (onExpired: () => void): () => void {
    const entry: Entry = { at: this.now() + this.deadlineMs, onExpired }
    this.entries.add(entry)
    if (this.timer == null) {
      this.timer = setInterval(() => { this.check() }, this.tickMs)
      this.timer.unref()
    }
    return () => { this.forget(entry) }
  }

  /** Drops every pending deadline and stops the ticker. */
  close (): void {
    this.entries.clear()
    this.stopTicker()
  }

  /** Pending deadlines, for tests. */
  get pending (): number { return this.entries.size }

  /** Fires every deadline that has passed (the ticker calls it; tests may too). */
  check (): void {
    const now = this.now()
    for (const e of this.entries) {
      if (e.at > now) continue
      this.entries.delete(e)
      e.onExpired()
    }
    if (this.entries.size === 0) this.stopTicker()
  }

  /**
   * The ticker is stopped by the next tick that finds nothing pending, not
   * here: between two back-to-back responses the set is empty for a moment,
   * and stopping and restarting it each time showed in the profile.
   */
  private forget (entry: Entry): void {
    this.entries.delete(entry)
  }

  private stopTicker (): void {
    if (this.timer != null) clearInterval(this.timer)
    this.timer = undefined
  }
}
