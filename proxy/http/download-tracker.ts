/**
 * What the dashboard shows about downloads: the active ones and the most
 * recent finished ones, with progress, speed and the bytes each source gave.
 */
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
}

export class DownloadTracker {
  private readonly active = new Map<number, DownloadView>()
  private readonly recent: DownloadView[] = []
  private readonly keepRecent: number
  private next = 1
  private readonly now: () => number

  constructor (keepRecent = 20, now: () => number = Date.now) {
    this.keepRecent = keepRecent
    this.now = now
  }

  start (id: string, name: string, range: [number, number]): DownloadView {
    const view: DownloadView = { n: this.next++, id, name, range, done: 0, total: range[1] - range[0] + 1, startedAt: this.now(), state: 'active', bytesPerSecond: 0, sources: {} }
    this.active.set(view.n, view)
    return view
  }

  progress (view: DownloadView, done: number, sources: Record<string, number>): void {
    view.done = done
    view.sources = { ...sources }
    const secs = (this.now() - view.startedAt) / 1000
    view.bytesPerSecond = secs > 0 ? done / secs : 0
  }

  end (view: DownloadView, state: 'done' | 'failed' | 'aborted', error?: string): void {
    if (!this.active.delete(view.n)) return
    view.state = state
    view.error = error
    view.endedAt = this.now()
    this.recent.unshift(view)
    this.recent.length = Math.min(this.recent.length, this.keepRecent)
  }

  snapshot (): { active: DownloadView[], recent: DownloadView[] } {
    return { active: [...this.active.values()], recent: [...this.recent] }
  }
}
