/**
 * What one read knows of who holds its chunks, and the fresh looks at the
 * holders (findSources) it takes when the pool has moved the copies.
 */
import { NoSourceError } from '../../core/errors.ts'
import { hasChunk } from '../../core/data-plane-wire.ts'
import type { ContentSource } from '../resolve/sources.ts'

export class HolderView {
  private readonly byId = new Map<string, ContentSource>()
  /** holders per chunk, computed once from the have-bitmaps */
  private readonly perChunk = new Map<number, string[]>()

  constructor (sources: readonly ContentSource[]) {
    this.replace(sources)
  }

  /** The fresh view replaces the old one: holders that died or lost their copies drop out, newer bitmaps win. */
  replace (sources: readonly ContentSource[]): void {
    this.byId.clear()
    for (const s of sources) if (!this.byId.has(s.id)) this.byId.set(s.id, s)
    this.perChunk.clear()
  }

  source (id: string): ContentSource | undefined {
    return this.byId.get(id)
  }

  ids (): string[] {
    return [...this.byId.keys()]
  }

  holders (index: number): string[] {
    let list = this.perChunk.get(index)
    if (list === undefined) {
      list = [...this.byId.values()].filter(s => hasChunk(s.have, index)).map(s => s.id)
      this.perChunk.set(index, list)
    }
    return list
  }

  /** The chunk was handed out: its holders are not needed again. */
  forget (index: number): void {
    this.perChunk.delete(index)
  }
}

export interface FreshLookInit {
  find?: (signal: AbortSignal) => Promise<readonly ContentSource[]>
  /** fresh looks one read may take */
  max: number
  /** ms between fresh looks that are not urgent */
  gapMs: number
}

/** The fresh looks at a content's holders one read takes: one at a time, a bounded number, spaced unless urgent. */
export class FreshLooks {
  private readonly o: FreshLookInit
  private readonly abort = new AbortController()
  private at = -Infinity
  /** a look is running */
  running = false
  /** looks started so far; each one's number is this count when it started */
  started = 0
  /** number of the last look that ended */
  done = 0

  constructor (init: FreshLookInit) {
    this.o = init
  }

  /**
   * Starts a look unless one is running, the read has taken its share, or
   * (unless `urgent`) the last one is too recent; `settle` gets the sources
   * found, or undefined and the error. Returns whether one was started.
   */
  start (now: number, urgent: boolean, settle: (list: readonly ContentSource[] | undefined, err?: unknown) => void): boolean {
    const find = this.o.find
    if (find == null || this.running || this.started >= this.o.max) return false
    if (!urgent && now - this.at < this.o.gapMs) return false
    this.running = true
    this.at = now
    const number = ++this.started
    const end = (list: readonly ContentSource[] | undefined, err?: unknown): void => {
      this.running = false
      this.done = number
      settle(list, err)
    }
    find(this.abort.signal).then(list => { end(list) }, (err: unknown) => { end(undefined, err ?? new NoSourceError('finding sources failed')) })
    return true
  }

  close (): void {
    this.abort.abort(new NoSourceError('read ended'))
  }
}
