/**
 * Each chunk's failures in one read: the sources that failed it this round
 * and at all, the round, and when it may be asked for again.
 */
export interface Rounds {
  /** sources that failed it this round */
  failed: Set<string>
  /** sources that failed it at all in this read */
  tried: Set<string>
  round: number
  /** Infinity: waiting for a fresh look at the holders */
  retryAt: number
  /** fresh looks started before its current rounds began: only a later one can tell that nobody else holds it */
  since: number
  last?: unknown
}

export class ChunkRounds {
  private readonly byChunk = new Map<number, Rounds>()

  get (index: number): Rounds | undefined {
    return this.byChunk.get(index)
  }

  /** The chunk's rounds, started now (after `looksStarted` fresh looks) if it had none. */
  of (index: number, looksStarted: number): Rounds {
    let r = this.byChunk.get(index)
    if (r == null) {
      r = { failed: new Set(), tried: new Set(), round: 0, retryAt: 0, since: looksStarted }
      this.byChunk.set(index, r)
    }
    return r
  }

  delete (index: number): void {
    this.byChunk.delete(index)
  }

  entries (): IterableIterator<[number, Rounds]> {
    return this.byChunk.entries()
  }

  /** `source` failed the chunk with `err`. */
  failed (index: number, source: string, err: unknown, looksStarted: number): void {
    const r = this.of(index, looksStarted)
    r.failed.add(source)
    r.tried.add(source)
    r.last = err
  }

  /** Another round after a pause that doubles each round. */
  nextRound (r: Rounds, now: number, backoffMs: number): void {
    r.round++
    r.failed.clear()
    r.retryAt = now + backoffMs * 2 ** (r.round - 1)
  }

  /** After a fresh look: chunks that gained a holder they have not tried start over; those that waited for the look go on deciding. */
  afterLook (holders: (index: number) => readonly string[], looksStarted: number): void {
    for (const [i, r] of this.byChunk) {
      if (holders(i).some(s => !r.tried.has(s))) {
        r.round = 0
        r.failed.clear()
        r.since = looksStarted
        r.retryAt = 0
      } else if (r.retryAt === Infinity) r.retryAt = 0
    }
  }
}
