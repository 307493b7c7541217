import { describeError, UnavailableError } from './errors.ts'
import type { Logger } from './log.ts'

/**
 * A job run on a cycle (liveness sweeps, the replication controller, garbage collection).
 * One run at a time; a run that throws is logged and the cycle goes on;
 * `close` stops the cycle and waits for a run in progress.
 */
export class Chore {
  private readonly name: string
  private readonly intervalMs: number
  private readonly fn: (signal: AbortSignal) => Promise<void> | void
  private readonly log: Logger
  private timer?: NodeJS.Timeout
  private running?: Promise<void>
  private controller?: AbortController

  constructor (name: string, intervalMs: number, fn: (signal: AbortSignal) => Promise<void> | void, logger: Logger) {
    this.name = name
    this.intervalMs = intervalMs
    this.fn = fn
    this.log = logger
  }

  /** Starts the cycle; the first run comes after one interval. Starting twice is harmless. */
  start (): void {
    if (this.controller != null) return
    this.controller = new AbortController()
    this.schedule()
  }

  /** Runs once now (also used by tests); concurrent calls share the run in progress. */
  async runOnce (): Promise<void> {
    if (this.running != null) return this.running
    const signal = this.controller?.signal ?? new AbortController().signal
    this.running = (async () => {
      try {
        await this.fn(signal)
      } catch (err) {
        if (!signal.aborted) this.log.error({ chore: this.name, err: describeError(err) }, 'chore run failed')
      } finally {
        this.running = undefined
      }
    })()
    return this.running
  }

  async close (): Promise<void> {
    this.controller?.abort(new UnavailableError(`${this.name} closing`))
    if (this.timer != null) clearTimeout(this.timer)
    this.timer = undefined
    await this.running
  }

  private schedule (): void {
    const controller = this.controller
    if (controller == null || controller.signal.aborted) return
    this.timer = setTimeout(() => {
      this.runOnce().finally(() => { this.schedule() })
    }, this.intervalMs)
  }
}
