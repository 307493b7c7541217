/** ms a timer may fire late before the reader takes it that the whole process was stalled */
const STALL_MS = 50

/**
 * One timer for a reader, due at the soonest of its deadlines (retry pauses,
 * hedge deadlines). When it fires much later than due, the proxy itself was
 * stalled (GC, a busy CPU): `forgive` is told by how much, since that time is
 * no source's fault.
 */
export class ReaderTimer {
  private readonly now: () => number
  private readonly fire: () => void
  private readonly forgive: (ms: number) => void
  private timer: NodeJS.Timeout | undefined
  private due = 0

  constructor (now: () => number, fire: () => void, forgive: (ms: number) => void) {
    this.now = now
    this.fire = fire
    this.forgive = forgive
  }

  /** Due at `soonest` unless it already is at or before then (Infinity: nothing to wait for). */
  arm (soonest: number, now: number): void {
    if (soonest === Infinity || (this.timer != null && this.due <= soonest)) return
    if (this.timer != null) clearTimeout(this.timer)
    this.due = soonest
    this.timer = setTimeout(() => {
      this.timer = undefined
      const late = this.now() - this.due
      if (late > STALL_MS) this.forgive(late)
      // Timers run before I/O in each turn of the event loop: answers that came in meanwhile are taken in before any request is judged late.
      setImmediate(this.fire)
    }, Math.max(1, soonest - now))
  }

  clear (): void {
    if (this.timer != null) clearTimeout(this.timer)
    this.timer = undefined
  }
}
