/**
 * The requests one read has in flight: per chunk (a request and, at most, its
 * hedge, or one disk read) and per source (the scheduler's per-source cap).
 */

/** Where an attempt reads from: a source's first request, a duplicate of a slow one, or the disk cache. */
export type AttemptKind = 'request' | 'hedge' | 'cache'

/**
 * running: its answer is awaited and used;
 * cancelled: aborted by the reader (the read ended, memory was reclaimed), so its failure is not the source's fault;
 * lost: cancelled because a rival request for the same chunk answered first.
 */
export type AttemptState = 'running' | 'cancelled' | 'lost'

/** One request for a chunk: to a source, or to the disk cache. */
export interface Attempt {
  index: number
  /** peer id, or CACHE_SOURCE */
  source: string
  kind: AttemptKind
  state: AttemptState
  controller: AbortController
  bytes: number
  started: number
  /** when a duplicate may start elsewhere; Infinity: never */
  hedgeAt: number
  /** bytes of the memory budget held for its blob */
  reserved: number
}

export class Flights {
  private readonly byChunk = new Map<number, Attempt[]>()
  private readonly perSource = new Map<string, number>()
  private disk = 0

  /** chunks with an attempt in flight */
  get size (): number {
    return this.byChunk.size
  }

  /** attempts in flight, duplicates included */
  get requests (): number {
    let n = 0
    for (const list of this.byChunk.values()) n += list.length
    return n
  }

  /** reads of the disk cache in flight */
  get diskReads (): number {
    return this.disk
  }

  /** this read's requests in flight per source (disk reads not counted) */
  get bySource (): ReadonlyMap<string, number> {
    return this.perSource
  }

  has (index: number): boolean {
    return this.byChunk.has(index)
  }

  of (index: number): readonly Attempt[] {
    return this.byChunk.get(index) ?? []
  }

  chunks (): IterableIterator<number> {
    return this.byChunk.keys()
  }

  entries (): IterableIterator<[number, readonly Attempt[]]> {
    return this.byChunk.entries()
  }

  all (): Attempt[] {
    return [...this.byChunk.values()].flat()
  }

  /** Counts a new attempt; one to a source also counts against that source. */
  add (a: Attempt): void {
    const list = this.byChunk.get(a.index)
    if (list == null) this.byChunk.set(a.index, [a])
    else list.push(a)
    if (a.kind === 'cache') this.disk++
    else this.perSource.set(a.source, (this.perSource.get(a.source) ?? 0) + 1)
  }

  /** An attempt settled: it no longer counts anywhere. */
  settle (a: Attempt): void {
    const list = this.byChunk.get(a.index)
    if (list != null) {
      const at = list.indexOf(a)
      if (at >= 0) list.splice(at, 1)
      if (list.length === 0) this.byChunk.delete(a.index)
    }
    if (a.kind === 'cache') {
      this.disk--
      return
    }
    const count = (this.perSource.get(a.source) ?? 1) - 1
    if (count > 0) this.perSource.set(a.source, count)
    else this.perSource.delete(a.source)
  }

  /** Forgets a chunk's attempts (they still count per source until each settles) and returns them. */
  release (index: number): Attempt[] {
    const list = this.byChunk.get(index) ?? []
    this.byChunk.delete(index)
    return list
  }
}
