/**
 * Demand seen by this node between two heartbeats: requests/s and bytes/s per
 * content, egress bytes/s overall. Reading the rates starts a new interval,
 * so each heartbeat reports what happened since the previous one.
 */
import type { ContentLoad } from '../core/wire.ts'

export interface LoadMeterInit {
  /** clock in ms (default performance.now), injectable so tests need no waiting */
  now?: () => number
}

export interface LoadReport {
  /** seconds the report covers */
  seconds: number
  /** bytes/s sent over the data plane */
  egressRate: number
  /** per content id; only contents that saw requests or bytes */
  contents: Record<string, ContentLoad>
}

interface Tally { requests: number, bytes: number }

export class LoadMeter {
  private readonly now: () => number
  private since: number
  private egressBytes = 0
  private perContent = new Map<string, Tally>()

  constructor (init: LoadMeterInit = {}) {
    this.now = init.now ?? (() => performance.now())
    this.since = this.now()
  }

  private tally (content: string): Tally {
    let t = this.perContent.get(content)
    if (t == null) this.perContent.set(content, t = { requests: 0, bytes: 0 })
    return t
  }

  /** One request for a blob of these contents (a chunk shared by several counts for each). */
  request (contents: readonly string[]): void {
    for (const c of contents) this.tally(c).requests++
  }

  /** `n` bytes went out for a blob of these contents. */
  sent (contents: readonly string[], n: number): void {
    this.egressBytes += n
    for (const c of contents) this.tally(c).bytes += n
  }

  /** Rates since the previous read; starts a new interval. */
  read (): LoadReport {
    const now = this.now()
    // A zero-length interval would divide by zero; report over at least 1 ms.
    const seconds = Math.max(now - this.since, 1) / 1000
    const contents: Record<string, ContentLoad> = {}
    for (const [id, t] of this.perContent) {
      contents[id] = { requests: t.requests / seconds, bytes: t.bytes / seconds }
    }
    const report: LoadReport = { seconds, egressRate: this.egressBytes / seconds, contents }
    this.since = now
    this.egressBytes = 0
    this.perContent = new Map()
    return report
  }
}
