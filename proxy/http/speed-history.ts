/**
 * Bytes received per second over the last minutes, in all and per source,
 * for the dashboard's speed chart. Fed by the downloads' progress (no timer
 * of its own): seconds with nothing received are zeros when read.
 */

export interface SpeedSeries {
  /** seconds since the epoch, one per point, oldest first */
  t: number[]
  /** bytes/s received in all */
  total: number[]
  /** bytes/s per source, the busiest first; the rest summed under `others` */
  sources: Array<{ source: string, rates: number[] }>
}

export interface SpeedHistoryInit {
  /** seconds kept (default 300) */
  windowSeconds?: number
  /** sources drawn apart at most; the rest are summed as `others` (default 6) */
  maxSources?: number
  now?: () => number
}

export const OTHER_SOURCES = 'others'
const MIN_SPAN_SECONDS = 60

export class SpeedHistory {
  private readonly buckets = new Map<number, Map<string, number>>()
  private readonly windowSeconds: number
  private readonly maxSources: number
  private readonly now: () => number

  constructor (init: SpeedHistoryInit = {}) {
    this.windowSeconds = init.windowSeconds ?? 300
    this.maxSources = init.maxSources ?? 6
    this.now = init.now ?? Date.now
  }

  add (source: string, bytes: number): void {
    if (!(bytes > 0)) return
    const second = Math.floor(this.now() / 1000)
    let bucket = this.buckets.get(second)
    if (bucket == null) {
      this.buckets.set(second, bucket = new Map())
      this.prune(second)
    }
    bucket.set(source, (bucket.get(source) ?? 0) + bytes)
  }

  /** The window up to the last whole second (the current one is still filling), or an empty series when nothing was received in it. */
  series (): SpeedSeries {
    const last = Math.floor(this.now() / 1000) - 1
    this.prune(last + 1)
    if (this.buckets.size === 0 || Math.min(...this.buckets.keys()) > last) return { t: [], total: [], sources: [] }
    // At least a minute is drawn, so a first download's few seconds read as a burst, not as the whole axis.
    const first = Math.min(last - Math.min(MIN_SPAN_SECONDS, this.windowSeconds) + 1, ...this.buckets.keys())
    const sums = new Map<string, number>()
    for (const [s, b] of this.buckets) {
      if (s > last) continue
      for (const [src, n] of b) sums.set(src, (sums.get(src) ?? 0) + n)
    }
    const ranked = [...sums.entries()].sort((a, b) => b[1] - a[1]).map(([s]) => s)
    const drawn = ranked.length > this.maxSources ? ranked.slice(0, this.maxSources - 1) : ranked
    const lanes = new Map<string, number[]>(drawn.map(s => [s, []]))
    if (drawn.length < ranked.length) lanes.set(OTHER_SOURCES, [])
    const t: number[] = []
    const total: number[] = []
    for (let s = first; s <= last; s++) {
      t.push(s)
      let sum = 0
      for (const lane of lanes.values()) lane.push(0)
      for (const [src, n] of this.buckets.get(s) ?? []) {
        sum += n
        const lane = lanes.get(src) ?? lanes.get(OTHER_SOURCES)!
        lane[lane.length - 1] += n
      }
      total.push(sum)
    }
    return { t, total, sources: [...lanes].map(([source, rates]) => ({ source, rates })) }
  }

  private prune (current: number): void {
    for (const s of this.buckets.keys()) {
      if (s <= current - this.windowSeconds || s > current + 1) this.buckets.delete(s)
    }
  }
}
