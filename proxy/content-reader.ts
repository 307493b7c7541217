import type { CID } from 'multiformats/cid'
import { decryptChunk, TAG_BYTES } from '../core/chunk-crypto.ts'
import { CdnError, describeError, HashMismatchError, NoSourceError, TimeoutError } from '../core/errors.ts'
import { parseBlobId } from '../core/ids.ts'
import type { Logger } from '../core/log.ts'
import { chunkLength, type Manifest } from '../core/manifest.ts'
import type { BlobFetcher, FetchedBlob } from './chunk-fetcher.ts'
import { hasChunk } from './have-bitmap.ts'
import type { BadCopyReport } from './manager-client.ts'
import { DEFAULT_WINDOW, planRequests, windowSize, type WindowInit } from './scheduler.ts'
import type { FailureKind, Scoreboard } from './scoreboard.ts'
import type { ContentSource } from './sources.ts'

export interface Progress {
  /** plaintext bytes handed to the consumer */
  done: number
  /** plaintext bytes this reader will hand out in all */
  total: number
  /** bytes received per source (peer id) */
  sources: Record<string, number>
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
  result: 'ok' | FailureKind
  bytes: number
  seconds: number
}

export interface ContentReaderComponents {
  fetcher: BlobFetcher
  scoreboard: Scoreboard
  logger: Logger
  /** called when a source served bytes that do not match a chunk id; absent when no manager is known */
  reportBadCopy?: (report: BadCopyReport) => void
  /** called after every chunk request, for metrics */
  onChunk?: (outcome: ChunkOutcome) => void
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
  /** ms before a new round of the same chunk; doubles each round (default 100) */
  retryBackoffMs?: number
  window?: WindowInit
  /** ms a chunk request may take before its size is counted (default 5 s) */
  chunkBaseTimeoutMs?: number
  /** slowest rate (bytes/s) a chunk transfer may have before it times out (default 128 KiB/s) */
  chunkMinRate?: number
  signal?: AbortSignal
  onProgress?: (progress: Progress) => void
}

interface Flight {
  source: string
  controller: AbortController
  bytes: number
}

interface Attempts {
  failed: Set<string>
  round: number
  retryAt: number
  last?: unknown
}

export interface ReaderStats {
  /** next chunk the consumer will get */
  next: number
  inflight: number
  /** fetched, decrypted, waiting for the consumer */
  buffered: number
  /** chunk requests sent so far */
  requested: number
  window: number
}

/**
 * Reads one content (or a run of its chunks) from many sources at once and
 * hands out the plaintext strictly in order. Only chunks inside the window
 * after the consumer's position are ever requested, so a consumer that stops
 * reading stops the network too and the reorder buffer stays bounded. A failed
 * chunk goes to another holder; a source serving wrong bytes is penalised and
 * reported. Fetching starts at the first `next()`, so opening a content costs
 * nothing until somebody reads it.
 */
export class ContentReader implements AsyncIterableIterator<Uint8Array> {
  private readonly c: ContentReaderComponents
  private readonly content: ReaderContent
  private readonly o: Required<Omit<ContentReaderInit, 'signal' | 'onProgress' | 'endChunk' | 'window'>> & { window: WindowInit }
  private readonly end: number
  private readonly total: number
  private readonly now: () => number
  private readonly signal?: AbortSignal
  private readonly onProgress?: (progress: Progress) => void
  private readonly cids: Array<CID | undefined>
  private readonly holderCache = new Map<number, string[]>()
  private readonly sourceById = new Map<string, ContentSource>()
  private readonly inflight = new Map<number, Flight>()
  private readonly perSource = new Map<string, number>()
  private readonly ready = new Map<number, Uint8Array>()
  private readonly attempts = new Map<number, Attempts>()
  private readonly received: Record<string, number> = {}
  private position: number
  private done = 0
  private requested = 0
  private window = 0
  private started = false
  private finished = false
  private closed = false
  private error: unknown
  private wake: (() => void) | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private retryDue = 0
  private readonly onAbort = (): void => { this.fail(this.signal?.reason) }

  constructor (components: ContentReaderComponents, content: ReaderContent, init: ContentReaderInit = {}) {
    this.c = components
    this.content = content
    const chunks = content.manifest.chunks.length
    // `??` per field, not a spread: an option passed as undefined means the default.
    this.o = {
      startChunk: init.startChunk ?? 0,
      maxRounds: init.maxRounds ?? 3,
      retryBackoffMs: init.retryBackoffMs ?? 100,
      chunkBaseTimeoutMs: init.chunkBaseTimeoutMs ?? 5000,
      chunkMinRate: init.chunkMinRate ?? 128 * 1024,
      window: init.window ?? {}
    }
    this.position = Math.max(0, Math.min(this.o.startChunk, chunks))
    this.end = Math.max(this.position, Math.min(init.endChunk ?? chunks, chunks))
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
    return { next: this.position, inflight: this.inflight.size, buffered: this.ready.size, requested: this.requested, window: this.window }
  }

  [Symbol.asyncIterator] (): this {
    return this
  }

  async next (): Promise<IteratorResult<Uint8Array>> {
    if (!this.started) {
      this.started = true
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
        this.holderCache.delete(this.position)
        this.attempts.delete(this.position)
        this.position++
        this.done += piece.length
        this.progress()
        this.pump()
        return { done: false, value: piece }
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
      this.onProgress({ done: this.done, total: this.total, sources: { ...this.received } })
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
    if (this.retryTimer != null) clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    for (const f of this.inflight.values()) f.controller.abort(new NoSourceError('read ended'))
    this.ready.clear()
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

  /** Starts every request the window and the scheduler allow; called on every change. */
  private pump (): void {
    if (this.stopped || !this.started) return
    const now = this.now()
    const chunkBytes = this.content.manifest.chunkSize + TAG_BYTES
    const estimates = [...this.sourceById.keys()].map(id => this.c.scoreboard.estimate(id))
    this.window = windowSize(estimates, chunkBytes, this.o.window)
    const limit = Math.min(this.end, this.position + this.window)
    const slots = this.window - this.inflight.size - this.ready.size
    const wanted: number[] = []
    for (let i = this.position; i < limit; i++) {
      if (this.inflight.has(i) || this.ready.has(i)) continue
      const a = this.attempts.get(i)
      if (a != null && a.retryAt > now) continue
      if (this.eligible(i).length === 0) {
        this.exhausted(i, now)
        if (this.stopped) return
        continue
      }
      wanted.push(i)
    }
    if (slots > 0 && wanted.length > 0) {
      const plan = planRequests({
        wanted,
        holders: i => this.eligible(i),
        bytes: i => this.blobBytes(i),
        slots,
        inflightBySource: this.perSource,
        maxPerSource: this.o.window.perSource ?? DEFAULT_WINDOW.perSource,
        estimator: this.c.scoreboard
      })
      for (const { chunk, source } of plan) this.start(chunk, source)
    }
    this.armRetry(now)
  }

  /** Every holder of `index` failed it this round: start another round after a pause, or give up. */
  private exhausted (index: number, now: number): void {
    const holders = this.holders(index)
    if (holders.length === 0) {
      this.fail(new NoSourceError(`no source holds chunk ${index} of ${this.content.id}`))
      return
    }
    const a = this.attemptsOf(index)
    if (a.round + 1 >= this.o.maxRounds) {
      this.fail(new NoSourceError(`all ${holders.length} sources of chunk ${index} of ${this.content.id} failed it ${this.o.maxRounds} times; last: ${describeError(a.last)}`, { cause: a.last }))
      return
    }
    a.round++
    a.failed.clear()
    a.retryAt = now + this.o.retryBackoffMs * 2 ** (a.round - 1)
  }

  /** One timer for all chunks waiting out a retry pause, due at the soonest of them. */
  private armRetry (now: number): void {
    let soonest = Infinity
    for (const [i, a] of this.attempts) {
      if (i >= this.position && a.retryAt > now && !this.inflight.has(i)) soonest = Math.min(soonest, a.retryAt)
    }
    if (soonest === Infinity || (this.retryTimer != null && this.retryDue <= soonest)) return
    if (this.retryTimer != null) clearTimeout(this.retryTimer)
    this.retryDue = soonest
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined
      this.pump()
    }, Math.max(1, soonest - now))
  }

  private attemptsOf (index: number): Attempts {
    let a = this.attempts.get(index)
    if (a == null) {
      a = { failed: new Set(), round: 0, retryAt: 0 }
      this.attempts.set(index, a)
    }
    return a
  }

  private start (index: number, sourceId: string): void {
    const source = this.sourceById.get(sourceId)
    if (source == null) return
    const bytes = this.blobBytes(index)
    const controller = new AbortController()
    this.inflight.set(index, { source: sourceId, controller, bytes })
    this.perSource.set(sourceId, (this.perSource.get(sourceId) ?? 0) + 1)
    this.c.scoreboard.begin(sourceId, bytes)
    this.requested++
    const timeoutMs = this.o.chunkBaseTimeoutMs + Math.ceil(bytes / this.o.chunkMinRate * 1000)
    const started = this.now()
    this.c.fetcher.fetchBlob(source, this.cid(index), { expectedBytes: bytes, signal: controller.signal, timeoutMs }).then(
      (blob) => { this.settle(index, sourceId, started, blob, undefined) },
      (err: unknown) => { this.settle(index, sourceId, started, undefined, err) }
    )
  }

  private settle (index: number, sourceId: string, started: number, blob: FetchedBlob | undefined, err: unknown): void {
    const flight = this.inflight.get(index)
    if (flight?.source === sourceId) this.inflight.delete(index)
    const count = (this.perSource.get(sourceId) ?? 1) - 1
    if (count > 0) this.perSource.set(sourceId, count)
    else this.perSource.delete(sourceId)
    this.c.scoreboard.end(sourceId, flight?.bytes ?? this.blobBytes(index))
    if (this.stopped) return
    try {
      if (blob !== undefined) this.accept(index, sourceId, started, blob)
      else this.reject(index, sourceId, started, err)
      this.pump()
    } catch (e) {
      this.fail(e)
    }
  }

  private accept (index: number, sourceId: string, started: number, blob: FetchedBlob): void {
    this.c.scoreboard.recordSuccess(sourceId, { bytes: blob.bytes.length, ttfbMs: blob.ttfbMs, totalMs: blob.totalMs, concurrent: (this.perSource.get(sourceId) ?? 0) + 1 })
    this.received[sourceId] = (this.received[sourceId] ?? 0) + blob.bytes.length
    this.c.onChunk?.({ source: sourceId, result: 'ok', bytes: blob.bytes.length, seconds: (this.now() - started) / 1000 })
    // The hash matched, so these are the publisher's bytes: a failure here is a wrong key, and no other source can fix it.
    this.ready.set(index, decryptChunk(this.content.key, index, blob.bytes))
    this.notify()
  }

  private reject (index: number, sourceId: string, started: number, err: unknown): void {
    const kind: FailureKind = err instanceof HashMismatchError ? 'hash' : err instanceof TimeoutError ? 'timeout' : 'error'
    this.c.scoreboard.recordFailure(sourceId, kind)
    this.c.onChunk?.({ source: sourceId, result: kind, bytes: 0, seconds: (this.now() - started) / 1000 })
    const a = this.attemptsOf(index)
    a.failed.add(sourceId)
    a.last = err
    const cid = this.cid(index).toString()
    this.c.logger.warn({ content: this.content.id, chunk: index, cid, source: sourceId, url: this.sourceById.get(sourceId)?.url, kind, err: err instanceof CdnError ? err.message : err }, 'chunk fetch failed; trying another source')
    if (kind === 'hash') this.c.reportBadCopy?.({ content: this.content.id, chunk: cid, node: sourceId, reason: describeError(err) })
  }
}
