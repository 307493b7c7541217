/** What a content reader is given, reports and counts; content-reader.ts re-exports all of it. */
import type { Logger } from '../../core/log.ts'
import type { Manifest } from '../../core/manifest.ts'
import type { BlobCache } from '../state/chunk-cache.ts'
import type { BadCopyReport } from '../resolve/manager-client.ts'
import type { ContentSource } from '../resolve/sources.ts'
import type { BlobFetcher } from './chunk-fetcher.ts'
import type { MemoryBudget } from './memory-budget.ts'
import type { WindowInit } from './scheduler.ts'
import type { FailureKind, Scoreboard } from './scoreboard.ts'

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

/** What happened to one chunk, for the dashboard's chunk strip: requested, duplicated (hedged), served by a source, read from the cache, or answered with a bad copy / a failure. */
export type ChunkState = 'requested' | 'hedged' | 'fetched' | 'cached' | 'bad-copy' | 'failed'

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
  /** called as each chunk's state changes (index in the content), for the dashboard */
  onChunkState?: (index: number, state: ChunkState) => void
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

/** The disk cache's name among the sources of Progress; no peer id can look like it. */
export const CACHE_SOURCE = 'cache'

/** The reader's options when not given (readAhead: with a cache; without one it is 0). */
export const READER_DEFAULTS = {
  startChunk: 0,
  maxRounds: 3,
  maxRefreshes: 5,
  refreshGapMs: 1000,
  retryBackoffMs: 100,
  chunkBaseTimeoutMs: 5000,
  chunkMinRate: 128 * 1024,
  hedgeFactor: 3,
  hedgeMinMs: 300,
  readAhead: 4
} as const

export type ReaderOptions = Required<Omit<ContentReaderInit, 'signal' | 'onProgress' | 'endChunk' | 'window'>> & { window: WindowInit }

/** The options with their defaults; read-ahead only with a cache (without one its chunks would be thrown away). */
export function readerOptions (init: ContentReaderInit, withCache: boolean): ReaderOptions {
  const d = READER_DEFAULTS
  // `??` per field, not a spread: an option passed as undefined means the default.
  return {
    startChunk: init.startChunk ?? d.startChunk,
    maxRounds: init.maxRounds ?? d.maxRounds,
    maxRefreshes: init.maxRefreshes ?? d.maxRefreshes,
    refreshGapMs: init.refreshGapMs ?? d.refreshGapMs,
    retryBackoffMs: init.retryBackoffMs ?? d.retryBackoffMs,
    chunkBaseTimeoutMs: init.chunkBaseTimeoutMs ?? d.chunkBaseTimeoutMs,
    chunkMinRate: init.chunkMinRate ?? d.chunkMinRate,
    hedgeFactor: init.hedgeFactor ?? d.hedgeFactor,
    hedgeMinMs: init.hedgeMinMs ?? d.hedgeMinMs,
    readAhead: withCache ? Math.max(0, init.readAhead ?? d.readAhead) : 0,
    window: init.window ?? {}
  }
}
