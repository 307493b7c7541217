import { LRUCache } from 'lru-cache'
import { decodeKey } from '../../core/chunk-crypto.ts'
import { BadInputError, NoSourceError, UnavailableError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { ContentMetadata, Manifest } from '../../core/manifest.ts'
import type { BlobCache, CacheStats } from '../state/chunk-cache.ts'
import type { BlobFetcher } from './chunk-fetcher.ts'
import { ContentReader, type ContentReaderComponents, type ContentReaderInit, type Progress } from './content-reader.ts'
import type { BadCopyReport, BadCopyReporter } from '../resolve/manager-client.ts'
import { MemoryBudget, type BudgetStats } from './memory-budget.ts'
import type { FetchMetrics } from '../metrics.ts'
import type { ContentResolver, ResolvedContent } from '../resolve/resolver.ts'
import type { Scoreboard } from './scoreboard.ts'

export type { Progress } from './content-reader.ts'

export interface OpenOptions {
  /** the content key from a key link (bytes or base64url) */
  key?: Uint8Array | string
  /** a capability (`?cap=`) for a private content, exchanged for its key at the manager */
  capability?: string
  /** aborts resolving and, later, reading */
  signal?: AbortSignal
  onProgress?: (progress: Progress) => void
  /** each chunk's state as it changes, for the dashboard's chunk strip */
  onChunkState?: ContentReaderComponents['onChunkState']
  /** first chunk to read (default 0); a Range request starts at the chunk holding its offset */
  startChunk?: number
  /** chunk to stop before (default: the end) */
  endChunk?: number
}

export interface OpenedContent {
  id: string
  manifest: Manifest
  metadata: ContentMetadata
  /** plaintext bytes `body` yields (the whole content unless a chunk run was asked for) */
  size: number
  /**
   * The plaintext, in order, verified and decrypted. Nothing is fetched until
   * it is iterated; a consumer that stops early must end the iteration
   * (`break`, or `return()`), which cancels every request.
   */
  body: AsyncIterable<Uint8Array> & AsyncIterator<Uint8Array>
}

export interface StatOptions {
  /** the content key from a key link (bytes or base64url) */
  key?: Uint8Array | string
  /** a capability (`?cap=`) for a private content */
  capability?: string
  signal?: AbortSignal
}

/** What a content is, known without reading a byte of it. */
export interface ContentStat {
  id: string
  manifest: Manifest
  metadata: ContentMetadata
  /** plaintext bytes of the whole content */
  size: number
}

/** One source as the dashboard shows it. */
export interface SourceView {
  /** the node's peer id */
  source: string
  /** its data-plane URL ('' when not known any more) */
  http: string
  /** smoothed round-trip time (a probe's before the first transfer) */
  rttMs: number
  /** smoothed throughput, all requests together */
  bytesPerSecond: number
  /** ms of expected delay charged for recent failures, decaying */
  penalty: number
  /** requests in flight there */
  inFlight: number
  /** bytes received from it in total */
  bytes: number
}

export interface EngineSnapshot {
  /** every source the scoreboard knows */
  sources: SourceView[]
  /** absent when no disk cache is configured */
  cache?: CacheStats
  /** the memory shared by all reads */
  memory: BudgetStats
}

export interface FetchEngine {
  open (id: string, options?: OpenOptions): Promise<OpenedContent>
  /** Resolves a content (cached) without reading it, so a Range can be checked against its size first. */
  stat (id: string, options?: StatOptions): Promise<ContentStat>
  snapshot (): EngineSnapshot
  close (): Promise<void>
}

export interface FetchEngineComponents {
  resolver: ContentResolver
  fetcher: BlobFetcher
  scoreboard: Scoreboard
  /** verified ciphertext on disk; absent: every chunk comes from the network */
  cache?: BlobCache & { stats (): CacheStats }
  /** where bad copies are reported; absent when no manager is known */
  reporter?: BadCopyReporter
  logger: Logger
  metrics?: FetchMetrics
}

export interface FetchEngineInit {
  reader?: Omit<ContentReaderInit, 'signal' | 'onProgress' | 'startChunk' | 'endChunk'>
  /**
   * bytes all reads together may hold in flight and in their reorder buffers
   * (default 256 MiB); each read may still hold one chunk beyond it, so none starves
   */
  maxBufferedBytes?: number
  /** ms for one bad-copy report (default 5 s) */
  reportTimeoutMs?: number
  /** ms during which the same bad copy is not reported again (default 60 s) */
  reportQuietMs?: number
}

/** Data-plane URLs remembered for the dashboard; bounded like the scoreboard. */
const MAX_KNOWN_URLS = 1024

/**
 * The viewer side's one entry point: resolve a content, then read it from
 * its sources through a ContentReader. Shared by the proxy daemon and `cdn
 * get`; it owns the bookkeeping that outlives one read (bad-copy reports,
 * reads to cancel on close).
 */
export class DefaultFetchEngine implements FetchEngine {
  private readonly c: FetchEngineComponents
  private readonly o: FetchEngineInit
  private readonly reads = new Set<ContentReader>()
  private readonly reports = new Set<Promise<void>>()
  private readonly reported = new Map<string, number>()
  private readonly urls = new LRUCache<string, string>({ max: MAX_KNOWN_URLS })
  private readonly closing = new AbortController()
  private readonly budget: MemoryBudget

  constructor (components: FetchEngineComponents, init: FetchEngineInit = {}) {
    this.c = components
    this.o = init
    this.budget = new MemoryBudget(init.maxBufferedBytes ?? 256 * 1024 * 1024)
  }

  get scoreboard (): Scoreboard {
    return this.c.scoreboard
  }

  async stat (id: string, options: StatOptions = {}): Promise<ContentStat> {
    const { resolved } = await this.resolve(id, options)
    return { id: resolved.id, manifest: resolved.manifest, metadata: resolved.metadata, size: resolved.manifest.size }
  }

  snapshot (): EngineSnapshot {
    const sources = this.c.scoreboard.snapshot().map((s): SourceView => ({
      source: s.id,
      http: this.urls.peek(s.id) ?? '',
      rttMs: s.rttMs,
      bytesPerSecond: s.throughput * 1000,
      penalty: s.penaltyMs,
      inFlight: s.inflight,
      bytes: s.bytes
    }))
    return { sources, ...(this.c.cache == null ? {} : { cache: this.c.cache.stats() }), memory: this.budget.stats() }
  }

  async open (id: string, options: OpenOptions = {}): Promise<OpenedContent> {
    const { resolved, key, signal } = await this.resolve(id, options)
    const capability = options.capability
    const metrics = this.c.metrics
    const reader: ContentReader = new ContentReader({
      fetcher: this.c.fetcher,
      scoreboard: this.c.scoreboard,
      logger: this.c.logger,
      cache: this.c.cache,
      budget: this.budget,
      findSources: async (sub) => {
        // The resolution this read started with may predate a cache eviction or a move of the copies.
        this.c.resolver.invalidate(resolved.id)
        const fresh = await this.c.resolver.resolve(resolved.id, { key, capability, signal: AbortSignal.any([sub, signal]) })
        this.learnUrls(fresh)
        return fresh.sources
      },
      onHedge: metrics == null ? undefined : (event) => { metrics.hedges.inc({ event }) },
      onChunkState: options.onChunkState,
      reportBadCopy: this.c.reporter == null ? undefined : (r) => { this.report(r) },
      onChunk: (o) => {
        // A holder that refused or served a bad copy may be gone or moved: the next open looks again rather than reuse this view.
        if (o.result === 'error' || o.result === 'hash') this.c.resolver.invalidate(resolved.id)
        if (metrics == null) return
        metrics.chunkRequests.inc({ result: o.result })
        metrics.chunkSeconds.observe(o.seconds)
        if (o.bytes > 0) metrics.chunkBytes.inc(o.bytes)
      },
      onFinish: (err) => {
        this.reads.delete(reader)
        metrics?.openReads.dec()
        // Sources that all failed may have moved: the next open asks again instead of reusing them.
        if (err instanceof NoSourceError) this.c.resolver.invalidate(resolved.id)
      }
    }, resolved, {
      ...this.o.reader,
      signal,
      onProgress: options.onProgress,
      startChunk: options.startChunk,
      endChunk: options.endChunk
    })
    this.reads.add(reader)
    metrics?.openReads.inc()
    return { id: resolved.id, manifest: resolved.manifest, metadata: resolved.metadata, size: reader.size, body: reader }
  }

  private async resolve (id: string, options: StatOptions): Promise<{ resolved: ResolvedContent, key: Uint8Array | undefined, signal: AbortSignal }> {
    if (this.closing.signal.aborted) throw new UnavailableError('fetch engine is closed')
    const key = typeof options.key === 'string' ? decodeKey(options.key) : options.key
    if (key != null && key.length !== 32) throw new BadInputError('content key must be 32 bytes')
    const signal = options.signal == null ? this.closing.signal : AbortSignal.any([options.signal, this.closing.signal])
    const resolved = await this.c.resolver.resolve(id, { key, capability: options.capability, signal })
    signal.throwIfAborted()
    this.learnUrls(resolved)
    return { resolved, key, signal }
  }

  private learnUrls (resolved: ResolvedContent): void {
    for (const s of resolved.sources) this.urls.set(s.id, s.url)
  }

  /** Cancels every read and pending report, then waits for the reports to settle. */
  async close (): Promise<void> {
    this.closing.abort(new UnavailableError('fetch engine is closed'))
    for (const r of [...this.reads]) await r.return()
    await Promise.allSettled([...this.reports])
  }

  /** Tells the manager about a bad copy, once per copy for a while: every reader of a popular content would hit it. */
  private report (r: BadCopyReport): void {
    const reporter = this.c.reporter
    if (reporter == null || this.closing.signal.aborted) return
    const slot = `${r.chunk}@${r.node}`
    const now = performance.now()
    const last = this.reported.get(slot)
    if (last !== undefined && now - last < (this.o.reportQuietMs ?? 60_000)) return
    this.reported.set(slot, now)
    if (this.reported.size > 1024) {
      for (const [k, at] of this.reported) if (now - at >= (this.o.reportQuietMs ?? 60_000)) this.reported.delete(k)
    }
    const task = reporter.report(r, { signal: this.closing.signal, timeoutMs: this.o.reportTimeoutMs ?? 5000 }).then(() => {
      this.c.metrics?.badCopyReports.inc({ result: 'sent' })
      this.c.logger.info({ ...r }, 'reported a bad copy to the manager')
    }, (err: unknown) => {
      this.c.metrics?.badCopyReports.inc({ result: 'failed' })
      this.c.logger.warn({ err, ...r }, 'could not report a bad copy to the manager')
    }).finally(() => { this.reports.delete(task) })
    this.reports.add(task)
  }
}
