import { chunkOpener, type ChunkOpener } from '../../core/chunk-opener.ts'
import { describeError, NoSourceError } from '../../core/errors.ts'
import { AttemptRunner } from './attempt-runner.ts'
import { ChunkRounds } from './chunk-rounds.ts'
import { ChunkTable } from './chunk-table.ts'
import { Flights, type Attempt } from './flights.ts'
import { FreshLooks, HolderView } from './holder-view.ts'
import { ReadBuffer } from './read-buffer.ts'
import { ReadLedger } from './read-ledger.ts'
import { ReaderTimer } from './reader-timer.ts'
import { CACHE_SOURCE, READER_DEFAULTS, readerOptions, type ContentReaderComponents, type ContentReaderInit, type Progress, type ReaderContent, type ReaderOptions, type ReaderStats } from './reader-types.ts'
import { DEFAULT_WINDOW, hedgeDeadline, hedgeTarget, planRequests, windowSize } from './scheduler.ts'
import type { ContentSource } from '../resolve/sources.ts'

export { CACHE_SOURCE, READER_DEFAULTS }

/** Disk cache reads in flight besides the playhead's. */
const DISK_READS_AHEAD = 2
export type { ChunkOutcome, ContentReaderComponents, ContentReaderInit, HedgeEvent, Progress, ReaderContent, ReaderStats } from './reader-types.ts'

/**
 * Reads one content (or a run of its chunks) from many sources at once and
 * hands out the plaintext strictly in order. Only chunks inside the window
 * after the consumer's position are ever requested, so a consumer that stops
 * reading stops the network too and the reorder buffer stays bounded; a
 * shared memory budget bounds all reads together. A chunk in the disk cache
 * is read from there; a chunk from the network goes to the holder expected
 * to finish first, is duplicated on another holder when it runs well past
 * its expected time (the first verified answer wins, the other is aborted),
 * and goes to another holder when it fails. A source serving wrong bytes is
 * penalised and reported. Fetching starts at the first `next()`, so opening
 * a content costs nothing until somebody reads it. Which source gets which
 * chunk, and when a request is duplicated, is decided in scheduler.ts.
 */
export class ContentReader implements AsyncIterableIterator<Uint8Array> {
  private readonly c: ContentReaderComponents
  private readonly content: ReaderContent
  private readonly o: ReaderOptions
  private readonly end: number
  /** chunk to stop read-ahead before */
  private readonly aheadEnd: number
  private readonly total: number
  private readonly now: () => number
  private readonly signal?: AbortSignal
  private readonly onProgress?: (progress: Progress) => void
  private readonly chunks: ChunkTable
  private readonly openChunk: ChunkOpener
  private readonly view: HolderView
  private readonly looks: FreshLooks
  private readonly flights = new Flights()
  private readonly ready: ReadBuffer
  private readonly rounds = new ChunkRounds()
  /** chunks the cache claimed but could not return; they come from the network */
  private readonly cacheSkip = new Set<number>()
  private position: number
  private done = 0
  private window = 0
  private started = false
  private finished = false
  private closed = false
  private error: unknown
  private wake: (() => void) | undefined
  private readonly ledger: ReadLedger
  private readonly timer: ReaderTimer
  private readonly runner: AttemptRunner
  private readonly onAbort = (): void => { this.fail(this.signal?.reason) }

  constructor (components: ContentReaderComponents, content: ReaderContent, init: ContentReaderInit = {}) {
    this.c = components
    this.content = content
    this.chunks = new ChunkTable(content.manifest)
    this.openChunk = chunkOpener(content.manifest, content.key)
    const chunks = this.chunks.count
    this.o = readerOptions(init, components.cache != null)
    this.position = Math.max(0, Math.min(this.o.startChunk, chunks))
    this.end = Math.max(this.position, Math.min(init.endChunk ?? chunks, chunks))
    this.aheadEnd = Math.min(chunks, this.end + this.o.readAhead)
    this.total = this.chunks.plainBytes(this.position, this.end)
    this.now = components.now ?? (() => performance.now())
    this.signal = init.signal
    this.onProgress = init.onProgress
    this.view = new HolderView(content.sources)
    this.ready = new ReadBuffer({ flights: this.flights, position: () => this.position, cancel: (a, reason) => { this.runner.cancel(a, 'cancelled', reason) }, logger: components.logger, content: content.id })
    this.ledger = new ReadLedger(components, content.id, this.now)
    this.timer = new ReaderTimer(this.now, () => { this.pump() }, (ms) => { for (const a of this.flights.all()) a.hedgeAt += ms })
    this.looks = new FreshLooks({ find: components.findSources, max: this.o.maxRefreshes, gapMs: this.o.refreshGapMs })
    this.runner = new AttemptRunner({
      fetcher: components.fetcher,
      cache: components.cache,
      logger: components.logger,
      flights: this.flights,
      buffer: this.ready,
      ledger: this.ledger,
      view: this.view,
      chunks: this.chunks,
      content: content.id,
      now: this.now,
      host: {
        stopped: () => this.stopped,
        pump: () => { this.pump() },
        fail: (err) => { this.fail(err) },
        deliver: (a, blob) => { this.deliver(a, blob) },
        chunkFailed: (a, err) => { this.rounds.failed(a.index, a.source, err, this.looks.started) },
        cacheMissed: (index) => { this.cacheSkip.add(index) }
      }
    }, this.o)
    // Already aborted: the first next() reports it (finishing here would run onFinish before the owner knows this reader).
    if (this.signal?.aborted === true) this.error = this.signal.reason
    else this.signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  /** Plaintext bytes this reader hands out in all. */
  get size (): number {
    return this.total
  }

  stats (): ReaderStats {
    return {
      next: this.position,
      inflight: this.flights.size,
      requests: this.flights.requests,
      buffered: this.ready.size,
      requested: this.ledger.requested,
      hedges: this.ledger.hedges,
      cacheHits: this.ledger.cacheHits,
      window: this.window
    }
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  async next (): Promise<IteratorResult<Uint8Array>> {
    if (!this.started && this.error === undefined && !this.finished) {
      this.started = true
      this.ready.open(this.c.budget)
      this.pump()
    }
    for (;;) {
      if (this.error !== undefined) {
        this.shutdown()
        throw this.error
      }
      if (this.finished || this.position >= this.end) {
        this.shutdown()
        return { done: true, value: undefined }
      }
      const plain = this.ready.take(this.position)
      if (plain !== undefined) return { done: false, value: this.handOut(plain) }
      await new Promise<void>((resolve) => { this.wake = resolve })
    }
  }

  /** The consumer is done (a `break`, a closed response): stop every request. */
  async return (): Promise<IteratorResult<Uint8Array>> {
    this.finished = true
    this.shutdown()
    // A next() still waiting (the engine closing under a reader) ends as done.
    this.notify()
    return { done: true, value: undefined }
  }

  private handOut (plain: Uint8Array): Uint8Array {
    const i = this.position
    this.view.forget(i)
    this.rounds.delete(i)
    this.cacheSkip.delete(i)
    this.position++
    this.done += plain.length
    this.progress()
    this.pump()
    return plain
  }

  private progress (): void {
    if (this.onProgress == null) return
    try {
      this.onProgress({ done: this.done, total: this.total, sources: { ...this.ledger.received }, cached: this.ledger.cached })
    } catch (err) {
      this.c.logger.warn({ err }, 'progress callback failed')
    }
  }

  private notify (): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }

  private fail (err: unknown): void {
    if (this.error !== undefined || this.finished) return
    this.error = err ?? new NoSourceError('read aborted')
    this.shutdown()
    this.notify()
  }

  private shutdown (): void {
    if (!this.closed) {
      this.closed = true
      try {
        this.c.onFinish?.(this.error)
      } catch (err) {
        this.c.logger.warn({ err }, 'finish callback failed')
      }
    }
    this.signal?.removeEventListener('abort', this.onAbort)
    this.timer.clear()
    this.looks.close()
    for (const a of this.flights.all()) this.runner.cancel(a, 'cancelled', new NoSourceError('read ended'))
    this.ready.close()
  }

  private get stopped (): boolean {
    return this.finished || this.error !== undefined
  }

  /** Holders of the chunk that have not failed it this round. */
  private eligible (index: number): string[] {
    const failed = this.rounds.get(index)?.failed
    const all = this.view.holders(index)
    return failed == null || failed.size === 0 ? all : all.filter(s => !failed.has(s))
  }

  private inCache (index: number): boolean {
    return this.c.cache != null && !this.cacheSkip.has(index) && this.c.cache.has(this.chunks.cid(index))
  }

  /** Takes memory for one more blob, or arranges to be pumped again once some is free. */
  private reserve (bytes: number, index?: number): boolean {
    return this.ready.reserve(bytes, index, () => { this.pump() })
  }

  /** Starts every request the window, the memory budget and the scheduler allow; called on every change. */
  private pump (): void {
    if (this.stopped || !this.started) return
    const now = this.now()
    this.window = windowSize(this.view.ids().map(id => this.c.scoreboard.estimate(id)), this.chunks.fullBlobBytes, this.o.window)
    const limit = Math.min(this.aheadEnd, this.position + this.window)
    let slots = this.window - this.flights.size - this.ready.size
    const wanted: number[] = []
    const ahead: number[] = []
    for (let i = this.position; i < limit; i++) {
      if (this.flights.has(i) || this.ready.has(i)) continue
      if (i >= this.end) {
        // Read-ahead only fills the cache, so what is there already, or has no holder, is skipped quietly.
        if (!this.inCache(i) && this.eligible(i).length > 0) ahead.push(i)
        continue
      }
      if (this.inCache(i)) {
        // Earlier chunks waiting for a source keep their claim on the slots; the disk needs none.
        if (i !== this.position && slots - wanted.length <= 0) continue
        // A disk read takes a millisecond or two: a few at once keep up with any client, and the
        // playhead's chunk is not verified and decrypted behind a whole window of others (the warm first byte).
        if (i !== this.position && this.flights.diskReads >= DISK_READS_AHEAD) continue
        if (!this.reserve(this.chunks.blobBytes(i), i)) break
        this.runner.cacheRead(i)
        slots--
        continue
      }
      const r = this.rounds.get(i)
      if (r != null && r.retryAt > now) continue
      if (this.eligible(i).length === 0) {
        this.exhausted(i, now)
        if (this.stopped) return
        continue
      }
      wanted.push(i)
    }
    // The playhead always gets a slot. Chunks fetched ahead of it while it was
    // retried can fill the window (which also shrinks when sources drop out),
    // and they leave the buffer only once the playhead chunk has come: without
    // its slot, the read would wait for itself forever.
    let planned = ahead.length === 0 ? wanted : [...wanted, ...ahead]
    if (slots <= 0 && wanted[0] === this.position) {
      planned = [this.position]
      slots = 1
    }
    if (slots > 0 && planned.length > 0) this.startPlanned(planned, slots)
    this.hedgeSlow(now)
    this.armTimer(now)
  }

  /** Read-ahead comes after every chunk the consumer asked for (`planned` is in that order). */
  private startPlanned (planned: number[], slots: number): void {
    const plan = planRequests({
      wanted: planned,
      holders: i => this.eligible(i),
      bytes: i => this.chunks.blobBytes(i),
      slots,
      inflightBySource: this.flights.bySource,
      maxPerSource: this.o.window.perSource ?? DEFAULT_WINDOW.perSource,
      estimator: this.c.scoreboard
    })
    for (const { chunk, source } of plan) {
      if (!this.reserve(this.chunks.blobBytes(chunk), chunk)) break
      this.startRequest(chunk, source, 'request')
    }
  }

  /**
   * Duplicates each request that is past its hedge deadline on the best
   * other holder, at most one duplicate per chunk at a time: one slow or
   * stalled source must not hold back the playhead.
   */
  private hedgeSlow (now: number): void {
    if (!Number.isFinite(this.o.hedgeFactor)) return
    for (const [index, list] of this.flights.entries()) {
      if (list.length !== 1 || index >= this.end) continue
      const slow = list[0]
      if (slow.kind === 'cache' || slow.hedgeAt > now) continue
      const bytes = this.chunks.blobBytes(index)
      const target = hedgeTarget(slow.source, this.eligible(index), bytes, this.c.scoreboard)
      if (target === undefined) {
        // No other holder: nothing to hedge with (holders change only on a refresh).
        slow.hedgeAt = Infinity
        continue
      }
      if (!this.reserve(bytes)) return
      this.ledger.hedgeStarted(slow, target, now)
      this.startRequest(index, target, 'hedge')
    }
  }

  /**
   * Every known holder of `index` failed it this round, or none is known:
   * another round after a pause, with a fresh look at the holders meanwhile.
   * A read gives up on a chunk only once a fresh look, started after the
   * chunk's failures began, found no holder it has not tried: the pool moves
   * copies (repairs, trims, migrations), so the holders a read started with
   * may all be gone while a healthy copy sits elsewhere.
   */
  private exhausted (index: number, now: number): void {
    const holders = this.view.holders(index)
    const r = this.rounds.of(index, this.looks.started)
    if (holders.length > 0 && r.round + 1 < this.o.maxRounds) {
      this.rounds.nextRound(r, now, this.o.retryBackoffMs)
      this.refreshSources(now, false)
      return
    }
    if (this.looks.running || (this.looks.done <= r.since && this.refreshSources(now, true))) {
      r.retryAt = Infinity
      return
    }
    if (holders.length === 0) {
      this.fail(new NoSourceError(`no source holds chunk ${index} of ${this.content.id}`))
      return
    }
    this.fail(new NoSourceError(`all ${r.tried.size} sources of chunk ${index} of ${this.content.id} failed it ${this.o.maxRounds} times; last: ${describeError(r.last)}`, { cause: r.last }))
  }

  /** One timer for the reader, due at the soonest retry pause end or hedge deadline. */
  private armTimer (now: number): void {
    let soonest = Infinity
    for (const [i, r] of this.rounds.entries()) {
      if (i >= this.position && r.retryAt > now && !this.flights.has(i)) soonest = Math.min(soonest, r.retryAt)
    }
    for (const [i, list] of this.flights.entries()) {
      // Deadlines already past are waiting for memory, which wakes the reader itself.
      if (list.length === 1 && i < this.end && list[0].hedgeAt > now) soonest = Math.min(soonest, list[0].hedgeAt)
    }
    this.timer.arm(soonest, now)
  }

  /** A fresh look at the holders (see FreshLooks.start); returns whether one was started. */
  private refreshSources (now: number, urgent: boolean): boolean {
    return this.looks.start(now, urgent, (list: readonly ContentSource[] | undefined, err?: unknown) => {
      if (this.stopped) return
      if (err !== undefined) this.c.logger.warn({ content: this.content.id, err: describeError(err) }, 'could not find more sources')
      if (list != null && list.length > 0) this.view.replace(list)
      this.rounds.afterLook(i => this.view.holders(i), this.looks.started)
      this.pump()
    })
  }

  /** The cache holds only verified ciphertext, so a blob from it is used like one from the network. */
  private deliver (a: Attempt, blob: Uint8Array): void {
    if (a.index >= this.end) {
      this.ready.unreserve(a)
      return
    }
    // The hash matched, so these are the publisher's bytes: a failure here is a wrong key, and no other source can fix it.
    const plain = this.openChunk(a.index, blob)
    this.ready.put(a, plain)
    this.notify()
  }

  private startRequest (index: number, sourceId: string, kind: 'request' | 'hedge'): void {
    const now = this.now()
    const hedgeAt = hedgeDeadline(now, sourceId, this.eligible(index), this.chunks.blobBytes(index), this.c.scoreboard, this.o)
    this.runner.request(index, sourceId, kind, now, hedgeAt)
  }
}
