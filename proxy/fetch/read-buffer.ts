/**
 * One read's chunks fetched and decrypted but not handed out yet, and the
 * memory it holds in the shared budget for them and for its requests.
 */
import { UnavailableError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { Attempt, Flights } from './flights.ts'
import type { BudgetAccount, MemoryBudget } from './memory-budget.ts'

interface Buffered {
  plain: Uint8Array
  reserved: number
}

export interface ReadBufferComponents {
  flights: Flights
  /** next chunk the consumer will get */
  position: () => number
  /** aborts an attempt whose memory is taken back */
  cancel: (a: Attempt, reason: Error) => void
  logger: Logger
  content: string
}

export class ReadBuffer {
  private readonly c: ReadBufferComponents
  private readonly ready = new Map<number, Buffered>()
  private account: BudgetAccount | undefined

  constructor (components: ReadBufferComponents) {
    this.c = components
  }

  /** Opens this read's account in the budget (none: memory is not bounded). */
  open (budget: MemoryBudget | undefined): void {
    this.account = budget?.account((bytes) => this.reclaim(bytes))
  }

  get size (): number {
    return this.ready.size
  }

  has (index: number): boolean {
    return this.ready.has(index)
  }

  /** Takes memory for one more blob, or arranges for `wake` once some is free. */
  reserve (bytes: number, index: number | undefined, wake: () => void): boolean {
    const account = this.account
    if (account == null) return true
    if (account.tryTake(bytes)) return true
    // The playhead may take back what this read holds further ahead: nobody else would free that for it.
    if (index === this.c.position() && this.reclaim(bytes) > 0 && account.tryTake(bytes)) return true
    account.whenFree(wake)
    return false
  }

  release (bytes: number): void {
    this.account?.release(bytes)
  }

  unreserve (a: Attempt): void {
    if (a.reserved > 0) this.account?.release(a.reserved)
    a.reserved = 0
  }

  /** Keeps a chunk's plaintext; the memory the attempt held goes with it. */
  put (a: Attempt, plain: Uint8Array): void {
    this.ready.set(a.index, { plain, reserved: a.reserved })
    a.reserved = 0
  }

  /** The chunk's plaintext, given up by the buffer with its memory; undefined when it has not come yet. */
  take (index: number): Uint8Array | undefined {
    const piece = this.ready.get(index)
    if (piece === undefined) return undefined
    this.ready.delete(index)
    this.account?.release(piece.reserved)
    return piece.plain
  }

  /** Everything this read held goes back at once; the attempts still settling release nothing more. */
  close (): void {
    this.ready.clear()
    this.account?.close()
  }

  /**
   * Gives memory back to the budget for a read below its fair share: the
   * requests and buffered chunks furthest ahead of the playhead go first
   * (they are fetched again, or read from the cache, when their turn comes).
   * The chunk at the playhead is never given back, so this read still moves.
   */
  private reclaim (want: number): number {
    const position = this.c.position()
    const ahead = new Set<number>()
    for (const i of this.c.flights.chunks()) if (i > position) ahead.add(i)
    for (const i of this.ready.keys()) if (i > position) ahead.add(i)
    let freed = 0
    for (const i of [...ahead].sort((a, b) => b - a)) {
      if (freed >= want) break
      for (const a of this.c.flights.release(i)) {
        this.c.cancel(a, new UnavailableError('memory was needed by another read'))
        freed += a.reserved
        this.unreserve(a)
      }
      const buffered = this.ready.get(i)
      if (buffered !== undefined) {
        this.ready.delete(i)
        freed += buffered.reserved
        this.account?.release(buffered.reserved)
      }
    }
    if (freed > 0) this.c.logger.debug({ content: this.c.content, freed }, 'gave memory back to another read')
    return freed
  }
}
