import type { CID } from 'multiformats/cid'
import { decryptChunk, TAG_BYTES } from '../../core/chunk-crypto.ts'
import { CdnError, describeError, HashMismatchError, NoSourceError, TimeoutError, UnavailableError } from '../../core/errors.ts'
import { parseBlobId } from '../../core/ids.ts'
import type { Logger } from '../../core/log.ts'
import { chunkLength, type Manifest } from '../../core/manifest.ts'
import type { BlobCache } from '../state/chunk-cache.ts'
import type { BlobFetcher, FetchedBlob } from './chunk-fetcher.ts'
import { hasChunk } from '../resolve/have-bitmap.ts'
import type { BadCopyReport } from '../resolve/manager-client.ts'
import type { BudgetAccount, MemoryBudget } from './memory-budget.ts'
import { DEFAULT_WINDOW, planRequests, windowSize, type WindowInit } from './scheduler.ts'
import type { FailureKind, Scoreboard } from './scoreboard.ts'
import type { ContentSource } from '../resolve/sources.ts'

export interface Progress {
  /** plaintext bytes handed to the consumer */
  done: number
  /** plaintext bytes this reader will hand out in all */
  total: number
  /**
   * blob bytes received per source: node peer ids, and CACHE_SOURCE
   * (`cache`) for those read from the disk cache, so a replay shows where
   * its bytes came from too
   */
  sources: Record<string, number>
  /** blob bytes read from the disk cache instead of the network */
  cached: number
}

/** What the reader reads: a resolved content, without the resolver's extras. */
export interface ReaderContent {
  id: string
  manifest: Manifest
  key: Uint8Array
  sources: readonly ContentSource[]
}

export interface ChunkOutcome {
  source: string
  /** lost: a duplicate request (hedge) served the chunk first and this one was aborted */
  result: 'ok' | FailureKind | 'lost'
  bytes: number
  seconds: number
}

/** started: a slow request was duplicated on another source; won/lost: whether that duplicate answered first. */
export type HedgeEvent = 'started' | 'won' | 'lost'

export interface ContentReaderComponents {
  fetcher: BlobFetcher
  scoreboard: Scoreboard
  logger: Logger
  /** verified ciphertext on disk: read before the network, filled from it */
  cache?: BlobCache
  /** memory shared with the other reads; this read opens an account in it when it starts */
  budget?: MemoryBudget
  /**
   * Asks again who holds the content: when a chunk that is not cached has no
   * holder (a resolution made while everything was cached carries no
   * sources), and when every known holder of a chunk failed it (the pool
   * moved the copies: a holder died, a trim deleted its copy).
   */
  findSources?: (signal: AbortSignal) => Promise<readonly ContentSource[]>
  /** called when a source served bytes that do not match a chunk id; absent when no manager is known */
  reportBadCopy?: (report: BadCopyReport) => void
  /** called after every chunk request, for metrics */
  onChunk?: (outcome: ChunkOutcome) => void
  onHedge?: (event: HedgeEvent) => void
  /** called once when the read ends: read to the end, stopped by the consumer (no error) or failed */
  onFinish?: (err?: unknown) => void
  now?: () => number
}

export interface ContentReaderInit {
  /** first chunk to hand out (default 0) */
  startChunk?: number
  /** chunk to stop before (default: all) */
  endChunk?: number
  /** times every holder of a chunk may fail it before the reader gives up (default 3) */
  maxRounds?: number
  /** fresh looks at the holders (findSources) one read may take (default 5) */
  maxRefreshes?: number
  /** ms between fresh looks taken while retries are still left (default 1 s); one about to give up waits for none */
  refreshGapMs?: number
  /** ms before a new round of the same chunk; doubles each round (default 100) */
  retryBackoffMs?: number
  window?: WindowInit
  /** ms a chunk request may take before its size is counted (default 5 s) */
  chunkBaseTimeoutMs?: number
  /** slowest rate (bytes/s) a chunk transfer may have before it times out (default 128 KiB/s) */
  chunkMinRate?: number
  /** a request running past this many times its expected finish is duplicated on another holder (default 3; Infinity: never) */
  hedgeFactor?: number
  /** ms a request runs at least before it is duplicated, so noise on fast transfers causes no hedges (default 300) */
  hedgeMinMs?: number
  /**
   * chunks after `endChunk` fetched into the cache while the consumer keeps
   * reading, so the player's next Range request finds them there (default 4
   * with a cache, 0 without: without a cache they would be thrown away)
   */
  readAhead?: number
  signal?: AbortSignal
  onProgress?: (progress: Progress) => void
}

/** One request for a chunk: to a source, or to the disk cache. A chunk has at most two at once (a request and its hedge). */
interface Attempt {
  index: number
  /** peer id, or CACHE_SOURCE */
  source: string
  controller: AbortController
  bytes: number
  started: number
  /** when a duplicate may start elsewhere; Infinity: never */
  hedgeAt: number
  hedge: boolean
  /** aborted by the reader (a race lost, the read ended): its failure is not the source's fault */
  cancelled: boolean
  /** lost a race against a duplicate */
  lost: boolean
  /** bytes of the memory budget held for its blob */
  reserved: number
}

interface Buffered {
  plain: Uint8Array
  reserved: number
}

interface Attempts {
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

export interface ReaderStats {
  /** next chunk the consumer will get */
  next: number
  /** chunks with a request in flight */
  inflight: number
  /** requests in flight, duplicates (hedges) included */
  requests: number
  /** fetched, decrypted, waiting for the consumer */
  buffered: number
  /** chunk requests sent to sources so far */
  requested: number
  /** duplicate requests started so far */
  hedges: number
  /** chunks read from the disk cache so far */
  cacheHits: number
  window: number
}

/** ms a timer may fire late before the reader takes it that the whole process was stalled */
const STALL_MS = 50

/** The disk cache's name among the sources of Progress; no peer id can look like it. */
export const CACHE_SOURCE = 'cache'

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
 * a content costs nothing until somebody reads it.
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
  private readonly holderCache = new Map<number, string[]>()
  private readonly sourceById = new Map<string, ContentSource>()
  private readonly flights = new Map<number, Attempt[]>()
  private readonly perSource = new Map<string, number>()
  private readonly ready = new Map<number, Buffered>()
  private readonly attempts = new Map<number, Attempts>()
  /** chunks the cache claimed but could not return; they come from the network */
  private readonly cacheSkip = new Set<number>()
  private readonly received: Record<string, number> = {}
  private readonly refreshAbort = new AbortController()
  private account: BudgetAccount | undefined
  private refreshing = false
  /** fresh looks started so far; each one's number is this count when it started */
  private refreshesStarted = 0
  /** number of the last fresh look that ended */
  private refreshDone = 0
  private refreshAt = -Infinity
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
    // `??` per field, not a spread: an option passed as undefined means the default.
    this.o = {
      startChunk: init.startChunk ?? 0,
      maxRounds: init.maxRounds ?? 3,
      maxRefreshes: init.maxRefreshes ?? 5,
      refreshGapMs: init.refreshGapMs ?? 1000,
      retryBackoffMs: init.retryBackoffMs ?? 100,
      chunkBaseTimeoutMs: init.chunkBaseTimeoutMs ?? 5000,
      chunkMinRate: init.chunkMinRate ?? 128 * 1024,
      hedgeFactor: init.hedgeFactor ?? 3,
      hedgeMinMs: init.hedgeMinMs ?? 300,
      readAhead: components.cache == null ? 0 : Math.max(0, init.readAhead ?? 4),
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
    for (const s of content.sources) if (!this.sourceById.has(s.id)) this.sourceById.set(s.id, s)
    // Already aborted: the first next() reports it (finishing here would run onFinish before the owner knows this reader).
    if (this.signal?.aborted === true) this.error = this.signal.reason
    else this.signal?.addEventListener('abort', this.onAbort, { once: true })
  }

  /** Plaintext bytes this reader hands out in all. */
  get size (): number {
    return this.total
  }

  stats (): ReaderStats {
    let requests = 0
    for (const list of this.flights.values()) requests += list.length
    return {
      next: this.position,
      inflight: this.flights.size,
      requests,
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
      if (piece !== undefined) {
        this.ready.delete(this.position)
        this.account?.release(piece.reserved)
        this.holderCache.delete(this.position)
        this.attempts.delete(this.position)
        this.cacheSkip.delete(this.position)
        this.position++
        this.done += piece.plain.length
        this.progress()
        this.pump()
        return { done: false, value: piece.plain }
      }
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
    this.refreshAbort.abort(new NoSourceError('read ended'))
    for (const list of this.flights.values()) {
      for (const a of list) {
        a.cancelled = true
        a.controller.abort(new NoSourceError('read ended'))
      }
    }
    this.ready.clear()
    // Everything this read held goes back at once; the attempts still settling release nothing more.
    this.account?.close()
  }

  private get stopped (): boolean {
    return this.finished || this.error !== undefined
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

  private holders (index: number): string[] {
    let list = this.holderCache.get(index)
    if (list === undefined) {
      list = [...this.sourceById.values()].filter(s => hasChunk(s.have, index)).map(s => s.id)
      this.holderCache.set(index, list)
    }
    return list
  }

  private eligible (index: number): string[] {
    const a = this.attempts.get(index)
    const all = this.holders(index)
    return a == null || a.failed.size === 0 ? all : all.filter(s => !a.failed.has(s))
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
    for (const i of this.flights.keys()) if (i > this.position) ahead.add(i)
    for (const i of this.ready.keys()) if (i > this.position) ahead.add(i)
    let freed = 0
    for (const i of [...ahead].sort((a, b) => b - a)) {
      if (freed >= want) break
      for (const a of this.flights.get(i) ?? []) {
        a.cancelled = true
        a.controller.abort(new UnavailableError('memory was needed by another read'))
        freed += a.reserved
        this.unreserve(a)
      }
      this.flights.delete(i)
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
    const estimates = [...this.sourceById.keys()].map(id => this.c.scoreboard.estimate(id))
    this.window = windowSize(estimates, chunkBytes, this.o.window)
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
      const a = this.attempts.get(i)
      if (a != null && a.retryAt > now) continue
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
    if (slots > 0 && planned.length > 0) {
      const plan = planRequests({
        // Read-ahead comes after every chunk the consumer asked for.
        wanted: planned,
        holders: i => this.eligible(i),
        bytes: i => this.blobBytes(i),
        slots,
        inflightBySource: this.perSource,
        maxPerSource: this.o.window.perSource ?? DEFAULT_WINDOW.perSource,
        estimator: this.c.scoreboard
      })
      for (const { chunk, source } of plan) {
        if (!this.reserve(this.blobBytes(chunk), chunk)) break
        this.startRequest(chunk, source, false)
      }
    }
    this.hedgeSlow(now)
    this.armTimer(now)
  }

  /**
   * Duplicates each request that runs well past its expected finish on the
   * best other holder, at most one duplicate per chunk at a time: one slow or
   * stalled source must not hold back the playhead.
   */
  private hedgeSlow (now: number): void {
    if (!Number.isFinite(this.o.hedgeFactor)) return
    for (const [index, list] of this.flights) {
      if (list.length !== 1 || index >= this.end) continue
      const slow = list[0]
      if (slow.source === CACHE_SOURCE || slow.hedgeAt > now) continue
      const bytes = this.blobBytes(index)
      let best: string | undefined
      let bestFinish = Infinity
      for (const s of this.eligible(index)) {
        if (s === slow.source) continue
        const finish = this.c.scoreboard.expectedFinish(s, bytes)
        if (finish < bestFinish) {
          best = s
          bestFinish = finish
        }
      }
      if (best === undefined) {
        // No other holder: nothing to hedge with (holders change only on a refresh).
        slow.hedgeAt = Infinity
        continue
      }
      if (!this.reserve(bytes)) return
      this.hedges++
      this.c.onHedge?.('started')
      this.c.logger.debug({ content: this.content.id, chunk: index, slow: slow.source, hedge: best, ranMs: Math.round(now - slow.started) }, 'chunk request running late; duplicating it on another source')
      this.startRequest(index, best, true)
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
    const holders = this.holders(index)
    const a = this.attemptsOf(index)
    if (holders.length > 0 && a.round + 1 < this.o.maxRounds) {
      a.round++
      a.failed.clear()
      a.retryAt = now + this.o.retryBackoffMs * 2 ** (a.round - 1)
      this.refreshSources(now, false)
      return
    }
    if (this.refreshing || (this.refreshDone <= a.since && this.refreshSources(now, true))) {
      a.retryAt = Infinity
      return
    }
    if (holders.length === 0) {
      this.fail(new NoSourceError(`no source holds chunk ${index} of ${this.content.id}`))
      return
    }
    this.fail(new NoSourceError(`all ${a.tried.size} sources of chunk ${index} of ${this.content.id} failed it ${this.o.maxRounds} times; last: ${describeError(a.last)}`, { cause: a.last }))
  }

  /** One timer for the reader, due at the soonest retry pause end or hedge deadline. */
  private armTimer (now: number): void {
    let soonest = Infinity
    for (const [i, a] of this.attempts) {
      if (i >= this.position && a.retryAt > now && !this.flights.has(i)) soonest = Math.min(soonest, a.retryAt)
    }
    for (const [i, list] of this.flights) {
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
      if (late > STALL_MS) this.forgive(late)
      // Timers run before I/O in each turn of the event loop: answers that came in meanwhile are taken in before any request is judged late.
      setImmediate(() => { this.pump() })
    }, Math.max(1, soonest - now))
  }

  private forgive (ms: number): void {
    for (const list of this.flights.values()) for (const a of list) a.hedgeAt += ms
  }

  private attemptsOf (index: number): Attempts {
    let a = this.attempts.get(index)
    if (a == null) {
      a = { failed: new Set(), tried: new Set(), round: 0, retryAt: 0, since: this.refreshesStarted }
      this.attempts.set(index, a)
    }
    return a
  }

  /**
   * Starts a fresh look at the holders unless one is running, the read has
   * taken its share, or (unless `urgent`) the last one is too recent.
   * Returns whether one was started.
   */
  private refreshSources (now: number, urgent: boolean): boolean {
    const find = this.c.findSources
    if (find == null || this.refreshing || this.refreshesStarted >= this.o.maxRefreshes) return false
    if (!urgent && now - this.refreshAt < this.o.refreshGapMs) return false
    this.refreshing = true
    this.refreshAt = now
    const number = ++this.refreshesStarted
    const settle = (list: readonly ContentSource[] | undefined): void => {
      this.refreshing = false
      this.refreshDone = number
      if (this.stopped) return
      if (list != null && list.length > 0) {
        // The fresh view replaces the old one: holders that died or lost their copies drop out, newer bitmaps win.
        this.sourceById.clear()
        for (const s of list) if (!this.sourceById.has(s.id)) this.sourceById.set(s.id, s)
        this.holderCache.clear()
      }
      this.afterRefresh()
      this.pump()
    }
    find(this.refreshAbort.signal).then(settle, (err: unknown) => {
      if (!this.stopped) this.c.logger.warn({ content: this.content.id, err: describeError(err) }, 'could not find more sources')
      settle(undefined)
    })
    return true
  }

  /** Chunks that gained a holder they have not tried start their rounds over; those that waited for the look go on deciding. */
  private afterRefresh (): void {
    for (const [i, a] of this.attempts) {
      if (this.holders(i).some(s => !a.tried.has(s))) {
        a.round = 0
        a.failed.clear()
        a.since = this.refreshesStarted
        a.retryAt = 0
      } else if (a.retryAt === Infinity) a.retryAt = 0
    }
  }

  private track (a: Attempt): void {
    const list = this.flights.get(a.index)
    if (list == null) this.flights.set(a.index, [a])
    else list.push(a)
  }

  private untrack (a: Attempt): void {
    const list = this.flights.get(a.index)
    if (list == null) return
    const at = list.indexOf(a)
    if (at >= 0) list.splice(at, 1)
    if (list.length === 0) this.flights.delete(a.index)
  }

  private startCacheRead (index: number): void {
    const cache = this.c.cache
    if (cache == null) return
    const bytes = this.blobBytes(index)
    const a: Attempt = { index, source: CACHE_SOURCE, controller: new AbortController(), bytes, started: this.now(), hedgeAt: Infinity, hedge: false, cancelled: false, lost: false, reserved: bytes }
    this.track(a)
    cache.get(this.cid(index)).then(
      (blob) => { this.settleCacheRead(a, blob, undefined) },
      (err: unknown) => { this.settleCacheRead(a, undefined, err) }
    )
  }

  private settleCacheRead (a: Attempt, blob: Uint8Array | undefined, err: unknown): void {
    this.untrack(a)
    if (this.stopped || a.cancelled) {
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

  private startRequest (index: number, sourceId: string, hedge: boolean): void {
    const source = this.sourceById.get(sourceId)
    const bytes = this.blobBytes(index)
    if (source == null) {
      this.account?.release(bytes)
      return
    }
    const now = this.now()
    // Measured before this request joins the queue there: what it waits behind is part of its expected time.
    // A source whose own estimate has collapsed (a stalled node drags it down) must not earn itself a late
    // deadline: a request is judged against what the best holder of the chunk would take.
    let expected = this.c.scoreboard.expectedFinish(sourceId, bytes)
    for (const s of this.eligible(index)) expected = Math.min(expected, this.c.scoreboard.expectedFinish(s, bytes))
    const a: Attempt = {
      index,
      source: sourceId,
      controller: new AbortController(),
      bytes,
      started: now,
      hedgeAt: now + Math.max(this.o.hedgeMinMs, this.o.hedgeFactor * expected),
      hedge,
      cancelled: false,
      lost: false,
      reserved: bytes
    }
    this.track(a)
    this.perSource.set(sourceId, (this.perSource.get(sourceId) ?? 0) + 1)
    this.c.scoreboard.begin(sourceId, bytes)
    this.requested++
    const timeoutMs = this.o.chunkBaseTimeoutMs + Math.ceil(bytes / this.o.chunkMinRate * 1000)
    this.c.fetcher.fetchBlob(source, this.cid(index), { expectedBytes: bytes, signal: a.controller.signal, timeoutMs }).then(
      (blob) => { this.settleRequest(a, blob, undefined) },
      (err: unknown) => { this.settleRequest(a, undefined, err) }
    )
  }

  private settleRequest (a: Attempt, blob: FetchedBlob | undefined, err: unknown): void {
    this.untrack(a)
    const count = (this.perSource.get(a.source) ?? 1) - 1
    if (count > 0) this.perSource.set(a.source, count)
    else this.perSource.delete(a.source)
    this.c.scoreboard.end(a.source, a.bytes)
    if (this.stopped || a.cancelled) {
      this.unreserve(a)
      if (a.lost) this.c.onChunk?.({ source: a.source, result: 'lost', bytes: 0, seconds: (this.now() - a.started) / 1000 })
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
    const rivals = this.flights.get(a.index) ?? []
    this.flights.delete(a.index)
    for (const r of rivals) {
      r.cancelled = true
      r.lost = true
      // A rival past its expected time is the slow one the hedge was for; one started later merely lost the race.
      if (r.hedgeAt <= now) this.c.scoreboard.recordFailure(r.source, 'slow')
      r.controller.abort(new TimeoutError(`chunk ${a.index} was served first by another source`))
    }
    if (a.hedge) this.c.onHedge?.('won')
    else if (rivals.some(r => r.hedge)) this.c.onHedge?.('lost')
    this.c.scoreboard.recordSuccess(a.source, { bytes: blob.bytes.length, ttfbMs: blob.ttfbMs, totalMs: blob.totalMs, concurrent: (this.perSource.get(a.source) ?? 0) + 1 })
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
    const at = this.attemptsOf(a.index)
    at.failed.add(a.source)
    at.tried.add(a.source)
    at.last = err
    const cid = this.cid(a.index).toString()
    const other = this.flights.has(a.index) ? 'its duplicate is still running' : 'trying another source'
    this.c.logger.warn({ content: this.content.id, chunk: a.index, cid, source: a.source, url: this.sourceById.get(a.source)?.url, kind, err: err instanceof CdnError ? err.message : err }, `chunk fetch failed; ${other}`)
    if (kind === 'hash') this.c.reportBadCopy?.({ content: this.content.id, chunk: cid, node: a.source, reason: describeError(err) })
  }
}
