/**
 * Carries out one read's attempts: starts a request to a source or a read of
 * the disk cache, and settles it when it ends, in the books (flights, memory,
 * ledger) and towards the reader.
 */
import { TimeoutError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { BlobCache } from '../state/chunk-cache.ts'
import { SharedBlob } from './blob-pool.ts'
import type { BlobFetcher, FetchedBlob } from './chunk-fetcher.ts'
import type { ChunkTable } from './chunk-table.ts'
import type { Attempt, AttemptKind, Flights } from './flights.ts'
import type { HolderView } from './holder-view.ts'
import type { ReadBuffer } from './read-buffer.ts'
import type { ReadLedger } from './read-ledger.ts'
import { CACHE_SOURCE } from './reader-types.ts'

/** What the reader does with what the attempts bring. */
export interface AttemptHost {
  /** the read ended: answers are dropped */
  stopped: () => boolean
  /** something changed: plan again */
  pump: () => void
  fail: (err: unknown) => void
  /** a verified blob of `a`'s chunk */
  deliver: (a: Attempt, blob: Uint8Array) => void
  /** a source failed the chunk */
  chunkFailed: (a: Attempt, err: unknown) => void
  /** the cache could not return a chunk it claimed */
  cacheMissed: (index: number) => void
}

export interface AttemptRunnerComponents {
  fetcher: BlobFetcher
  cache?: BlobCache
  flights: Flights
  buffer: ReadBuffer
  ledger: ReadLedger
  view: HolderView
  chunks: ChunkTable
  host: AttemptHost
  logger: Logger
  content: string
  now: () => number
}

export interface AttemptTimeouts {
  /** ms a chunk request may take before its size is counted */
  chunkBaseTimeoutMs: number
  /** slowest rate (bytes/s) a chunk transfer may have before it times out */
  chunkMinRate: number
}

export class AttemptRunner {
  private readonly c: AttemptRunnerComponents
  private readonly o: AttemptTimeouts

  constructor (components: AttemptRunnerComponents, timeouts: AttemptTimeouts) {
    this.c = components
    this.o = timeouts
  }

  cancel (a: Attempt, state: 'cancelled' | 'lost', reason: Error): void {
    a.state = state
    a.controller.abort(reason)
  }

  cacheRead (index: number): void {
    const cache = this.c.cache
    if (cache == null) return
    const a = this.track(index, CACHE_SOURCE, 'cache', this.c.now(), Infinity)
    cache.get(this.c.chunks.cid(index)).then(
      (blob) => { this.settleCacheRead(a, blob, undefined) },
      (err: unknown) => { this.settleCacheRead(a, undefined, err) }
    )
  }

  /** Asks `sourceId` for the chunk; the memory for it is already taken and goes back if the source is gone. */
  request (index: number, sourceId: string, kind: 'request' | 'hedge', now: number, hedgeAt: number): void {
    const source = this.c.view.source(sourceId)
    const bytes = this.c.chunks.blobBytes(index)
    if (source == null) {
      this.c.buffer.release(bytes)
      return
    }
    const a = this.track(index, sourceId, kind, now, hedgeAt)
    this.c.ledger.requestStarted(a)
    const timeoutMs = this.o.chunkBaseTimeoutMs + Math.ceil(bytes / this.o.chunkMinRate * 1000)
    this.c.fetcher.fetchBlob(source, this.c.chunks.cid(index), { expectedBytes: bytes, signal: a.controller.signal, timeoutMs }).then(
      (blob) => { this.settleRequest(a, blob, undefined) },
      (err: unknown) => { this.settleRequest(a, undefined, err) }
    )
  }

  private track (index: number, source: string, kind: AttemptKind, now: number, hedgeAt: number): Attempt {
    const bytes = this.c.chunks.blobBytes(index)
    const a: Attempt = { index, source, kind, state: 'running', controller: new AbortController(), bytes, started: now, hedgeAt, reserved: bytes }
    this.c.flights.add(a)
    return a
  }

  private settleCacheRead (a: Attempt, blob: Uint8Array | undefined, err: unknown): void {
    const { host, buffer } = this.c
    this.c.flights.settle(a)
    if (host.stopped() || a.state !== 'running') {
      buffer.unreserve(a)
      return
    }
    try {
      if (blob === undefined) {
        if (err !== undefined) this.c.logger.warn({ err, content: this.c.content, chunk: a.index }, 'cache read failed; fetching the chunk instead')
        host.cacheMissed(a.index)
        buffer.unreserve(a)
      } else {
        this.c.ledger.cacheHit(blob.length, a.index)
        host.deliver(a, blob)
      }
      host.pump()
    } catch (e) {
      host.fail(e)
    }
  }

  private settleRequest (a: Attempt, blob: FetchedBlob | undefined, err: unknown): void {
    const { host, buffer } = this.c
    this.c.flights.settle(a)
    this.c.ledger.requestEnded(a)
    if (host.stopped() || a.state !== 'running') {
      blob?.release?.()
      buffer.unreserve(a)
      if (a.state === 'lost') this.c.ledger.lost(a)
      if (!host.stopped()) host.pump()
      return
    }
    try {
      if (blob !== undefined) this.accept(a, blob)
      else {
        buffer.unreserve(a)
        this.reject(a, err)
      }
      host.pump()
    } catch (e) {
      host.fail(e)
    }
  }

  /** The first verified answer wins: its rivals are aborted. */
  private accept (a: Attempt, blob: FetchedBlob): void {
    const now = this.c.now()
    const rivals = this.c.flights.release(a.index)
    for (const r of rivals) this.cancel(r, 'lost', new TimeoutError(`chunk ${a.index} was served first by another source`))
    this.c.ledger.served(a, blob, rivals, now, (this.c.flights.bySource.get(a.source) ?? 0) + 1)
    // The receive buffer goes back to the pool once both the cache's write and the decryption are done with it.
    const shared = new SharedBlob(blob.release ?? (() => {}))
    try {
      // Ciphertext only: the cache never sees a key or a plaintext byte.
      this.c.cache?.store(this.c.chunks.cid(a.index), blob.bytes, shared.share())
      this.c.host.deliver(a, blob.bytes)
    } finally {
      shared.drop()
    }
  }

  private reject (a: Attempt, err: unknown): void {
    this.c.ledger.failed(a, err, this.c.chunks.cid(a.index).toString(), this.c.view.source(a.source)?.url, this.c.flights.has(a.index))
    this.c.host.chunkFailed(a, err)
  }
}
