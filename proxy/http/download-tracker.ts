/**
 * What the dashboard shows about downloads: the active ones and the most
 * recent finished ones, with progress, speed, the bytes each source gave and
 * a strip of their chunks; and the speed of all of them over the last minutes.
 */
import type { ChunkState } from '../fetch/reader-types.ts'
import { SpeedHistory, type SpeedSeries } from './speed-history.ts'
import { nextChunkMark, STRIP_MAX_CHUNKS } from './chunk-strip.ts'

export interface DownloadView {
  n: number
  id: string
  name: string
  /** first and last byte asked for */
  range: [number, number]
  done: number
  total: number
  startedAt: number
  endedAt?: number
  state: 'active' | 'done' | 'failed' | 'aborted'
  error?: string
  bytesPerSecond: number
  sources: Record<string, number>
  /** the chunks read, one mark each (chunk-strip.ts); absent for reads of more than STRIP_MAX_CHUNKS */
  chunks?: { first: number, marks: string }
}

export interface TrackerInit {
  /** finished downloads kept (default 20) */
  keepRecent?: number
  /** seconds of speed history (default 300) */
  historySeconds?: number
  now?: () => number
}

export class DownloadTracker {
  private readonly active = new Map<number, DownloadView>()
  private readonly recent: DownloadView[] = []
  private readonly keepRecent: number
  private next = 1
  private readonly now: () => number
  readonly speed: SpeedHistory

  constructor (init: TrackerInit = {}) {
    this.keepRecent = init.keepRecent ?? 20
    this.now = init.now ?? Date.now
    this.speed = new SpeedHistory({ windowSeconds: init.historySeconds, now: this.now })
  }

  /** `chunks`: the first chunk read and the one it stops before, when known. */
  start (id: string, name: string, range: [number, number], chunks?: [number, number]): DownloadView {
    const view: DownloadView = { n: this.next++, id, name, range, done: 0, total: range[1] - range[0] + 1, startedAt: this.now(), state: 'active', bytesPerSecond: 0, sources: {} }
    if (chunks != null && chunks[1] > chunks[0] && chunks[1] - chunks[0] <= STRIP_MAX_CHUNKS) {
      view.chunks = { first: chunks[0], marks: '.'.repeat(chunks[1] - chunks[0]) }
    }
    this.active.set(view.n, view)
    return view
  }

  /** `sources`: bytes received so far per source, as the reader counts them. */
  progress (view: DownloadView, done: number, sources: Record<string, number>): void {
    for (const [s, n] of Object.entries(sources)) this.speed.add(s, n - (view.sources[s] ?? 0))
    view.done = done
    view.sources = { ...sources }
    const secs = (this.now() - view.startedAt) / 1000
    view.bytesPerSecond = secs > 0 ? done / secs : 0
  }

  /** A chunk of the content changed state; chunks outside the download (read-ahead) are not drawn. */
  chunk (view: DownloadView, index: number, state: ChunkState): void {
    const c = view.chunks
    if (c == null || view.state !== 'active') return
    const at = index - c.first
    if (at < 0 || at >= c.marks.length) return
    const mark = nextChunkMark(c.marks[at], state)
    if (mark !== c.marks[at]) c.marks = c.marks.slice(0, at) + mark + c.marks.slice(at + 1)
  }

  end (view: DownloadView, state: 'done' | 'failed' | 'aborted', error?: string): void {
    if (!this.active.delete(view.n)) return
    view.state = state
    view.error = error
    view.endedAt = this.now()
    const secs = (view.endedAt - view.startedAt) / 1000
    if (secs > 0) view.bytesPerSecond = view.done / secs
    this.recent.unshift(view)
    this.recent.length = Math.min(this.recent.length, this.keepRecent)
  }

  /** Active downloads with their strips; finished ones without, but the newest (so a short download's strip stays visible). */
  snapshot (): { active: DownloadView[], recent: DownloadView[] } {
    const recent = this.recent.map((v, i) => i === 0 || v.chunks == null ? { ...v } : { ...v, chunks: undefined })
    return { active: [...this.active.values()].map(v => ({ ...v })), recent }
  }

  history (): SpeedSeries {
    return this.speed.series()
  }
}
