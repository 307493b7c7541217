import { TimeoutError } from '../../core/errors.ts'

/** A request's combined cancellation: the caller's signal or its own deadline, whichever comes first. */
export interface Deadline {
  readonly signal: AbortSignal
  /** true when the deadline (not the caller) aborted the signal */
  readonly expired: boolean
  /** Stops watching; call it in `finally` so nothing outlives the request. */
  clear(): void
}

interface Entry {
  at: number
  controller: AbortController
  message: string
  expired: boolean
  detach: () => void
}

export interface DeadlineClockInit {
  /** ms between checks; a deadline fires at most this late (default 100) */
  tickMs?: number
  now?: () => number
}

/**
 * Deadlines of every in-flight request share one coarse ticker instead of a
 * timer each: a window of 64 chunk requests would otherwise arm and clear 64
 * timers per window, and chunk deadlines are seconds long, so 100 ms of slack
 * costs nothing. The ticker runs only while some deadline is pending and never
 * keeps the process alive.
 */
export class DeadlineClock {
  private readonly entries = new Set<Entry>()
  private readonly tickMs: number
  private readonly now: () => number
  private timer: NodeJS.Timeout | undefined

  constructor (init: DeadlineClockInit = {}) {
    this.tickMs = init.tickMs ?? 100
    this.now = init.now ?? (() => performance.now())
  }

  /** A signal aborted with a TimeoutError after `ms`, or with `parent`'s reason if that aborts first. */
  start (ms: number, parent?: AbortSignal, message = `timed out after ${ms} ms`): Deadline {
    const controller = new AbortController()
    const entry: Entry = { at: this.now() + ms, controller, message, expired: false, detach: () => {} }
    if (parent?.aborted === true) {
      controller.abort(parent.reason)
    } else {
      if (parent != null) {
        const onAbort = (): void => {
          this.remove(entry)
          controller.abort(parent.reason)
        }
        parent.addEventListener('abort', onAbort, { once: true })
        entry.detach = () => { parent.removeEventListener('abort', onAbort) }
      }
      this.entries.add(entry)
      this.arm()
    }
    return {
      signal: controller.signal,
      get expired () { return entry.expired },
      clear: () => { this.remove(entry) }
    }
  }

  /** Fires nothing more; pending signals stay unaborted (their owners are being torn down too). */
  close (): void {
    for (const e of this.entries) e.detach()
    this.entries.clear()
    this.disarm()
  }

  private remove (entry: Entry): void {
    entry.detach()
    this.entries.delete(entry)
    if (this.entries.size === 0) this.disarm()
  }

  private arm (): void {
    if (this.timer != null) return
    this.timer = setInterval(() => { this.tick() }, this.tickMs)
    this.timer.unref()
  }

  private disarm (): void {
    if (this.timer == null) return
    clearInterval(this.timer)
    this.timer = undefined
  }

  private tick (): void {
    const now = this.now()
    for (const e of this.entries) {
      if (e.at > now) continue
      e.expired = true
      this.remove(e)
      e.controller.abort(new TimeoutError(e.message))
    }
  }
}
