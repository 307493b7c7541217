import type { CID } from 'multiformats/cid'
import { decryptChunk, TAG_BYTES } from '../../core/chunk-crypto.ts'
import { CdnError, describeError, HashMismatchError, NoSourceError, TimeoutError, UnavailableError } from '../../core/errors.ts'
import { parseBlobId } from '../../core/ids.ts'
import { chunkLength } from '../../core/manifest.ts'
import type { FetchedBlob } from './chunk-fetcher.ts'
import { ChunkRounds } from './chunk-rounds.ts'
import { Flights, type Attempt, type AttemptKind } from './flights.ts'
import { FreshLooks, HolderView } from './holder-view.ts'
import type { BudgetAccount } from './memory-budget.ts'
import { CACHE_SOURCE, READER_DEFAULTS, type ContentReaderComponents, type ContentReaderInit, type Progress, type ReaderContent, type ReaderStats } from './reader-types.ts'
import { DEFAULT_WINDOW, hedgeDeadline, hedgeTarget, planRequests, windowSize, type WindowInit } from './scheduler.ts'
import type { FailureKind } from './scoreboard.ts'
import type { ContentSource } from '../resolve/sources.ts'

export { CACHE_SOURCE, READER_DEFAULTS }
export type { ChunkOutcome, ContentReaderComponents, ContentReaderInit, HedgeEvent, Progress, ReaderContent, ReaderStats } from './reader-types.ts'

interface Buffered {
  plain: Uint8Array
  reserved: number
}

/** ms a timer may fire late before the reader takes it that the whole process was stalled */
const STALL_MS = 50

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
  private readonly o: Required<Omit<ContentReaderInit, 'signal' | 'onProgress' | 'endChunk' | 'window'>> & { window: WindowInit }
  private readonly end: number
  /** chunk to stop read-ahead before */
  private readonly aheadEnd: number
  private readonly total: number
  private readonly now: () => number
  private readonly signal?: AbortSignal
  private readonly onProgress?: (progress: Progress) => void
  private readonly cids: Array<CID | undefined>
  private readonly view: HolderView
  private readonly looks: FreshLooks
  private readonly flights = new Flights()
  private readonly ready = new Map<number, Buffered>()
  private readonly rounds = new ChunkRounds()
  /** chunks the cache claimed but could not return; they come from the network */
  private readonly cacheSkip = new Set<number>()
  private readonly received: Record<string, number> = {}
  private account: BudgetAccount | undefined
  private position: number
  private done = 0
  private cached = 0
  private cacheHits = 0
  private requested = 0
  private hedges = 0
  private window = 0
  private started = false
  private finished = false
  private closed = false
  private error: unknown
  private wake: (() => void) | undefined
  private timer: NodeJS.Timeout | undefined
  private timerDue = 0
  private readonly onAbort = (): void => { this.fail(this.signal?.reason) }

  constructor (components: ContentReaderComponents, content: ReaderContent, init: ContentReaderInit = {}) {
    this.c = components
    this.content = content
    const chunks = content.manifest.chunks.length
    const d = READER_DEFAULTS
    // `??` per field, not a spread: an option passed as undefined means the default.
    this.o = {
      startChunk: init.startChunk ?? d.startChunk,
      maxRounds: init.maxRounds ?? d.maxRounds,
      maxRefreshes: init.maxRefreshes ?? d.maxRefreshes,
      refreshGapMs: init.refreshGapMs ?? d.refreshGapMs,
      retryBackoffMs: init.retryBackoffMs ?? d.retryBackoffMs,
      chunkBaseTimeoutMs: init.chunkBaseTimeoutMs ?? d.chunkBaseTimeoutMs,
      chunkMinRate: init.chunkMinRate ?? d.chunkMinRate,
      hedgeFactor: init.hedgeFactor ?? d.hedgeFactor,
      hedgeMinMs: init.hedgeMinMs ?? d.hedgeMinMs,
      readAhead: components.cache == null ? 0 : Math.max(0, init.readAhead ?? d.readAhead),
      window: init.window ?? {}
    }
    this.position = Math.max(0, Math.min(this.o.startChunk, chunks))
    this.end = Math.max(this.position, Math.min(init.endChunk ?? chunks, chunks))
    this.aheadEnd = Math.min(chunks, this.end + this.o.readAhead)
    let total = 0
    for (let i = this.position; i < this.end; i++) total += chunkLength(content.manifest, i)
    this.total = total
    this.now = components.now ?? (() => performance.now())
    this.signal = init.signal
    this.onProgress = init.onProgress
    this.cids = new Array(chunks)
    this.view = new HolderView(content.sources)
    this.looks = new FreshLooks({ find: components.findSources, max: this.o.maxRefreshes, gapMs: this.o.refreshGapMs })
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
      requested: this.requested,
      hedges: this.hedges,
      cacheHits: this.cacheHits,
      window: this.window
    }
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  async next (): Promise<IteratorResult<Uint8Array>> {
    if (!this.started && this.error === undefined && !this.finished) {
      this.started = true
      this.account = this.c.budget?.account((bytes) => this.reclaim(bytes))
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
      const piece = this.ready.get(this.position)
      if (piece !== undefined) return { done: false, value: this.handOut(piece) }
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

  private handOut (piece: Buffered): Uint8Array {
    const i = this.position
    this.ready.delete(i)
    this.account?.release(piece.reserved)
    this.view.forget(i)
    this.rounds.delete(i)
    this.cacheSkip.delete(i)
    this.position++
    this.done += piece.plain.length
    this.progress()
    this.pump()
    return piece.plain
  }

  private progress (): void {
    if (this.onProgress == null) return
    try {
      this.onProgress({ done: this.done, total: this.total, sources: { ...this.received }, cached: this.cached })
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
    if (this.timer != null) clearTimeout(this.timer)
    this.timer = undefined
    this.looks.close()
    for (const a of this.flights.all()) this.cancel(a, 'cancelled', new NoSourceError('read ended'))
    this.ready.clear()
    // Everything this read held goes back at once; the attempts still settling release nothing more.
    this.account?.close()
  }

  private get stopped (): boolean {
    return this.finished || this.error !== undefined
  }

  private cancel (a: Attempt, state: 'cancelled' | 'lost', reason: Error): void {
    a.state = state
    a.controller.abort(reason)
  }

  private cid (index: number): CID {
    let cid = this.cids[index]
    if (cid === undefined) {
      cid = parseBlobId(this.content.manifest.chunks[index])
      this.cids[index] = cid
    }
    return cid
  }

  private blobBytes (index: number): number {
    return chunkLength(this.content.manifest, index) + TAG_BYTES
  }

  /** Holders of the chunk that have not failed it this round. */
  private eligible (index: number): string[] {
    const failed = this.rounds.get(index)?.failed
    const all = this.view.holders(index)
    return failed == null || failed.size === 0 ? all : all.filter(s => !failed.has(s))
  }

  private inCache (index: number): boolean {
    return this.c.cache != null && !this.cacheSkip.has(index) && this.c.cache.has(this.cid(index))
  }

  /** Takes memory for one more blob, or arranges to be pumped again once some is free. */
  private reserve (bytes: number, index?: number): boolean {
    const account = this.account
    if (account == null) return true
    if (account.tryTake(bytes)) return true
    // The playhead may take back what this read holds further ahead: nobody else would free that for it.
    if (index === this.position && this.reclaim(bytes) > 0 && account.tryTake(bytes)) return true
    account.whenFree(() => { this.pump() })
    return false
  }

  private unreserve (a: Attempt): void {
    if (a.reserved > 0) this.account?.release(a.reserved)
    a.reserved = 0
  }

  /**
   * Gives memory back to the budget for a read below its fair share: the
   * requests and buffered chunks furthest ahead of the playhead go first
   * (they are fetched again, or read from the cache, when their turn comes).
   * The chunk at the playhead is never given back, so this read still moves.
   */
  private reclaim (want: number): number {
    const ahead = new Set<number>()
    for (const i of this.flights.chunks()) if (i > this.position) ahead.add(i)
    for (const i of this.ready.keys()) if (i > this.position) ahead.add(i)
    let freed = 0
    for (const i of [...ahead].sort((a, b) => b - a)) {
      if (freed >= want) break
      for (const a of this.flights.release(i)) {
        this.cancel(a, 'cancelled', new UnavailableError('memory was needed by another read'))
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
    if (freed > 0) this.c.logger.debug({ content: this.content.id, freed }, 'gave memory back to another read')
    return freed
  }

  /** Starts every request the window, the memory budget and the scheduler allow; called on every change. */
  private pump (): void {
    if (this.stopped || !this.started) return
    const now = this.now()
    const chunkBytes = this.content.manifest.chunkSize + TAG_BYTES
    this.window = windowSize(this.view.ids().map(id => this.c.scoreboard.estimate(id)), chunkBytes, this.o.window)
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
        if (!this.reserve(this.blobBytes(i), i)) break
        this.startCacheRead(i)
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
      bytes: i => this.blobBytes(i),
      slots,
      inflightBySource: this.flights.bySource,
      maxPerSource: this.o.window.perSource ?? DEFAULT_WINDOW.perSource,
      estimator: this.c.scoreboard
    })
    for (const { chunk, source } of plan) {
      if (!this.reserve(this.blobBytes(chunk), chunk)) break
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
      const bytes = this.blobBytes(index)
      const target = hedgeTarget(slow.source, this.eligible(index), bytes, this.c.scoreboard)
      if (target === undefined) {
        // No other holder: nothing to hedge with (holders change only on a refresh).
        slow.hedgeAt = Infinity
        continue
      }
      if (!this.reserve(bytes)) return
      this.hedges++
      this.c.onHedge?.('started')
      this.c.logger.debug({ content: this.content.id, chunk: index, slow: slow.source, hedge: target, ranMs: Math.round(now - slow.started) }, 'chunk request running late; duplicating it on another source')
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
    if (soonest === Infinity || (this.timer != null && this.timerDue <= soonest)) return
    if (this.timer != null) clearTimeout(this.timer)
    this.timerDue = soonest
    this.timer = setTimeout(() => {
      this.timer = undefined
      const late = this.now() - this.timerDue
      // The proxy itself was stalled (GC, a busy CPU): that time is no source's fault, so no request is judged late for it.
      if (late > STALL_MS) for (const a of this.flights.all()) a.hedgeAt += late
      // Timers run before I/O in each turn of the event loop: answers that came in meanwhile are taken in before any request is judged late.
      setImmediate(() => { this.pump() })
    }, Math.max(1, soonest - now))
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

  private newAttempt (index: number, source: string, kind: AttemptKind, now: number, hedgeAt: number): Attempt {
    const bytes = this.blobBytes(index)
    const a: Attempt = { index, source, kind, state: 'running', controller: new AbortController(), bytes, started: now, hedgeAt, reserved: bytes }
    this.flights.add(a)
    return a
  }

  private startCacheRead (index: number): void {
    const cache = this.c.cache
    if (cache == null) return
    const a = this.newAttempt(index, CACHE_SOURCE, 'cache', this.now(), Infinity)
    cache.get(this.cid(index)).then(
      (blob) => { this.settleCacheRead(a, blob, undefined) },
      (err: unknown) => { this.settleCacheRead(a, undefined, err) }
    )
  }

  private settleCacheRead (a: Attempt, blob: Uint8Array | undefined, err: unknown): void {
    this.flights.settle(a)
    if (this.stopped || a.state !== 'running') {
      this.unreserve(a)
      return
    }
    try {
      if (blob === undefined) {
        if (err !== undefined) this.c.logger.warn({ err, content: this.content.id, chunk: a.index }, 'cache read failed; fetching the chunk instead')
        this.cacheSkip.add(a.index)
        this.unreserve(a)
      } else {
        this.cacheHits++
        this.cached += blob.length
        this.received[CACHE_SOURCE] = (this.received[CACHE_SOURCE] ?? 0) + blob.length
        this.deliver(a, blob)
      }
      this.pump()
    } catch (e) {
      this.fail(e)
    }
  }

  /** The cache holds only verified ciphertext, so a blob from it is used like one from the network. */
  private deliver (a: Attempt, blob: Uint8Array): void {
    if (a.index >= this.end) {
      this.unreserve(a)
      return
    }
    // The hash matched, so these are the publisher's bytes: a failure here is a wrong key, and no other source can fix it.
    const plain = decryptChunk(this.content.key, a.index, blob)
    this.ready.set(a.index, { plain, reserved: a.reserved })
    a.reserved = 0
    this.notify()
  }

  private startRequest (index: number, sourceId: string, kind: 'request' | 'hedge'): void {
    const source = this.view.source(sourceId)
    const bytes = this.blobBytes(index)
    if (source == null) {
      this.account?.release(bytes)
      return
    }
    const now = this.now()
    const hedgeAt = hedgeDeadline(now, sourceId, this.eligible(index), bytes, this.c.scoreboard, this.o)
    const a = this.newAttempt(index, sourceId, kind, now, hedgeAt)
    this.c.scoreboard.begin(sourceId, bytes)
    this.requested++
    const timeoutMs = this.o.chunkBaseTimeoutMs + Math.ceil(bytes / this.o.chunkMinRate * 1000)
    this.c.fetcher.fetchBlob(source, this.cid(index), { expectedBytes: bytes, signal: a.controller.signal, timeoutMs }).then(
      (blob) => { this.settleRequest(a, blob, undefined) },
      (err: unknown) => { this.settleRequest(a, undefined, err) }
    )
  }

  private settleRequest (a: Attempt, blob: FetchedBlob | undefined, err: unknown): void {
    this.flights.settle(a)
    this.c.scoreboard.end(a.source, a.bytes)
    if (this.stopped || a.state !== 'running') {
      this.unreserve(a)
      if (a.state === 'lost') this.c.onChunk?.({ source: a.source, result: 'lost', bytes: 0, seconds: (this.now() - a.started) / 1000 })
      if (!this.stopped) this.pump()
      return
    }
    try {
      if (blob !== undefined) this.accept(a, blob)
      else {
        this.unreserve(a)
        this.reject(a, err)
      }
      this.pump()
    } catch (e) {
      this.fail(e)
    }
  }

  private accept (a: Attempt, blob: FetchedBlob): void {
    const now = this.now()
    const rivals = this.flights.release(a.index)
    for (const r of rivals) {
      // A rival past its expected time is the slow one the hedge was for; one started later merely lost the race.
      if (r.hedgeAt <= now) this.c.scoreboard.recordFailure(r.source, 'slow')
      this.cancel(r, 'lost', new TimeoutError(`chunk ${a.index} was served first by another source`))
    }
    if (a.kind === 'hedge') this.c.onHedge?.('won')
    else if (rivals.some(r => r.kind === 'hedge')) this.c.onHedge?.('lost')
    this.c.scoreboard.recordSuccess(a.source, { bytes: blob.bytes.length, ttfbMs: blob.ttfbMs, totalMs: blob.totalMs, concurrent: (this.flights.bySource.get(a.source) ?? 0) + 1 })
    this.received[a.source] = (this.received[a.source] ?? 0) + blob.bytes.length
    this.c.onChunk?.({ source: a.source, result: 'ok', bytes: blob.bytes.length, seconds: (now - a.started) / 1000 })
    // Ciphertext only: the cache never sees a key or a plaintext byte.
    this.c.cache?.store(this.cid(a.index), blob.bytes)
    this.deliver(a, blob.bytes)
  }

  private reject (a: Attempt, err: unknown): void {
    const kind: FailureKind = err instanceof HashMismatchError ? 'hash' : err instanceof TimeoutError ? 'timeout' : 'error'
    this.c.scoreboard.recordFailure(a.source, kind)
    this.c.onChunk?.({ source: a.source, result: kind, bytes: 0, seconds: (this.now() - a.started) / 1000 })
    this.rounds.failed(a.index, a.source, err, this.looks.started)
    const cid = this.cid(a.index).toString()
    const other = this.flights.has(a.index) ? 'its duplicate is still running' : 'trying another source'
    this.c.logger.warn({ content: this.content.id, chunk: a.index, cid, source: a.source, url: this.view.source(a.source)?.url, kind, err: err instanceof CdnError ? err.message : err }, `chunk fetch failed; ${other}`)
    if (kind === 'hash') this.c.reportBadCopy?.({ content: this.content.id, chunk: cid, node: a.source, reason: describeError(err) })
  }
}
