/**
 * What one read tells the rest of the proxy about its chunk requests: the
 * scoreboard's view of each source, the metrics callbacks, the bad-copy
 * reports and the log, with the counts its stats and progress show.
 */
import { CdnError, describeError, HashMismatchError, TimeoutError } from '../../core/errors.ts'
import type { FetchedBlob } from './chunk-fetcher.ts'
import type { Attempt } from './flights.ts'
import { CACHE_SOURCE, type ContentReaderComponents } from './reader-types.ts'
import type { FailureKind } from './scoreboard.ts'

export class ReadLedger {
  private readonly c: ContentReaderComponents
  private readonly content: string
  private readonly now: () => number
  /** blob bytes received per source, the cache included */
  readonly received: Record<string, number> = {}
  /** blob bytes read from the disk cache */
  cached = 0
  cacheHits = 0
  requested = 0
  hedges = 0

  constructor (components: ContentReaderComponents, content: string, now: () => number) {
    this.c = components
    this.content = content
    this.now = now
  }

  requestStarted (a: Attempt): void {
    this.c.scoreboard.begin(a.source, a.bytes)
    this.requested++
    this.c.onChunkState?.(a.index, a.kind === 'hedge' ? 'hedged' : 'requested')
  }

  requestEnded (a: Attempt): void {
    this.c.scoreboard.end(a.source, a.bytes)
  }

  cacheHit (bytes: number, index: number): void {
    this.c.onChunkState?.(index, 'cached')
    this.cacheHits++
    this.cached += bytes
    this.received[CACHE_SOURCE] = (this.received[CACHE_SOURCE] ?? 0) + bytes
  }

  hedgeStarted (slow: Attempt, target: string, now: number): void {
    this.hedges++
    this.c.onHedge?.('started')
    this.c.logger.debug({ content: this.content, chunk: slow.index, slow: slow.source, hedge: target, ranMs: Math.round(now - slow.started) }, 'chunk request running late; duplicating it on another source')
  }

  /** `a` served its chunk first; `rivals` (aborted for it) lost the race; `concurrent` counts the requests it shared its source with. */
  served (a: Attempt, blob: FetchedBlob, rivals: readonly Attempt[], now: number, concurrent: number): void {
    for (const r of rivals) {
      // A rival past its expected time is the slow one the hedge was for; one started later merely lost the race.
      if (r.hedgeAt <= now) this.c.scoreboard.recordFailure(r.source, 'slow')
    }
    if (a.kind === 'hedge') this.c.onHedge?.('won')
    else if (rivals.some(r => r.kind === 'hedge')) this.c.onHedge?.('lost')
    this.c.scoreboard.recordSuccess(a.source, { bytes: blob.bytes.length, ttfbMs: blob.ttfbMs, totalMs: blob.totalMs, concurrent })
    this.received[a.source] = (this.received[a.source] ?? 0) + blob.bytes.length
    this.c.onChunk?.({ source: a.source, result: 'ok', bytes: blob.bytes.length, seconds: (now - a.started) / 1000 })
    this.c.onChunkState?.(a.index, 'fetched')
  }

  lost (a: Attempt): void {
    this.c.onChunk?.({ source: a.source, result: 'lost', bytes: 0, seconds: (this.now() - a.started) / 1000 })
  }

  /** `a` failed with `err`; `cid` is its chunk's, `url` its source's, `rivalRunning` whether a duplicate still runs. */
  failed (a: Attempt, err: unknown, cid: string, url: string | undefined, rivalRunning: boolean): void {
    const kind: FailureKind = err instanceof HashMismatchError ? 'hash' : err instanceof TimeoutError ? 'timeout' : 'error'
    this.c.scoreboard.recordFailure(a.source, kind)
    this.c.onChunk?.({ source: a.source, result: kind, bytes: 0, seconds: (this.now() - a.started) / 1000 })
    this.c.onChunkState?.(a.index, kind === 'hash' ? 'bad-copy' : 'failed')
    const other = rivalRunning ? 'its duplicate is still running' : 'trying another source'
    this.c.logger.warn({ content: this.content, chunk: a.index, cid, source: a.source, url, kind, err: err instanceof CdnError ? err.message : err }, `chunk fetch failed; ${other}`)
    if (kind === 'hash') this.c.reportBadCopy?.({ content: this.content, chunk: cid, node: a.source, reason: describeError(err) })
  }
}
