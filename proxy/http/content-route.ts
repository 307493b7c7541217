/**
 * Serves one content to a browser or player: conditional requests, a single
 * byte range, HEAD, and the body streamed in order with the response's
 * backpressure. Seeking is a Range request: reading starts at the chunk that
 * holds its first byte and stops after the chunk holding its last.
 */
import { once } from 'node:events'
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { UpstreamError } from '../../core/errors.ts'
import { chunkAt, chunkStart, type ChunkLayout } from '../../core/manifest.ts'
import type { Logger } from '../../core/log.ts'
import { ifMatch, noneMatch } from '../../core/etag.ts'
import { parseRange, rangeStillValid } from './byte-range.ts'
import type { DownloadTracker } from './download-tracker.ts'
import type { FetchEngine } from '../fetch/fetch-engine.ts'
import type { GatewayMetrics } from '../metrics.ts'
import {
  lastModified, sendContentHead, sendNotModified, sendPartialHead, sendPreconditionFailed,
  sendRangeNotSatisfiable, type ContentHead
} from './responses.ts'

export interface ContentRouteComponents {
  engine: FetchEngine
  tracker: DownloadTracker
  metrics?: GatewayMetrics
  logger: Logger
}

/** Thrown into a read when the browser went away, so the read stops instead of fetching for nobody. */
export class ClientGoneError extends Error {
  constructor () {
    super('client closed the connection')
    this.name = 'ClientGoneError'
  }
}

function single (v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}

interface Span { start: number, end: number, partial: boolean }

/** Decides what to send: 304, 412, 416, the whole content or one range. Returns undefined when the answer was already sent. */
function choose (req: IncomingMessage, res: ServerResponse, head: ContentHead): Span | undefined {
  const etag = `"${head.id}"`
  if (!ifMatch(req.headers['if-match'], etag)) {
    sendPreconditionFailed(res, head)
    return undefined
  }
  if (noneMatch(req.headers['if-none-match'], etag)) {
    sendNotModified(res, head)
    return undefined
  }
  const whole: Span = { start: 0, end: head.size - 1, partial: false }
  if (!rangeStillValid(single(req.headers['if-range']), etag, lastModified(head) ?? '')) return whole
  const range = parseRange(req.headers.range, head.size)
  if (range.kind === 'unsatisfiable') {
    sendRangeNotSatisfiable(res, head, range.reason)
    return undefined
  }
  return range.kind === 'partial' ? { start: range.start, end: range.end, partial: true } : whole
}

/** Below this a piece may share its memory (Node's small-buffer slab): never freed by hand. */
const OWN_MEMORY_MIN = 64 * 1024

/**
 * A decrypted chunk is a fresh megabyte that nobody but this response holds.
 * Freeing it the moment the socket has written it lets the allocator hand the
 * same memory to the next chunk, still mapped and in the CPU's cache; left to
 * the garbage collector, every chunk costs new pages, their faults and a share
 * of a full collection (measured: most of the proxy's cost per MiB after the
 * crypto itself). Only a piece that spans its whole ArrayBuffer is freed.
 */
export function freeWhenWritten (piece: Uint8Array): ((err?: Error | null) => void) | undefined {
  const memory = piece.buffer
  if (!(memory instanceof ArrayBuffer) || piece.byteOffset !== 0 || memory.byteLength !== piece.byteLength || piece.byteLength < OWN_MEMORY_MIN) return undefined
  return (err) => {
    // A failed write may not be finished with the bytes: the collector frees those.
    if (err == null && !memory.detached) memory.transfer(0)
  }
}

/** What opens a content besides its id: a key link's key, or a capability the manager exchanges for it. */
export interface Access {
  key?: Uint8Array
  capability?: string
}

/** `changing`: served under a name, whose answer changes with each generation (responses.ts). */
export async function serveContent (c: ContentRouteComponents, req: IncomingMessage, res: ServerResponse, id: string, access: Access, changing?: OutgoingHttpHeaders): Promise<void> {
  const ac = new AbortController()
  const onClose = (): void => { if (!res.writableFinished) ac.abort(new ClientGoneError()) }
  res.on('close', onClose)
  try {
    const stat = await c.engine.stat(id, { ...access, signal: ac.signal })
    const head: ContentHead = { id: stat.id, size: stat.size, metadata: stat.metadata, createdAt: stat.manifest.createdAt, ...(changing != null ? { changing } : {}) }
    const span = choose(req, res, head)
    if (span == null) return
    if (req.method === 'HEAD' || head.size === 0) {
      writeHead(res, head, span)
      res.end()
      return
    }
    await streamSpan(c, res, head, stat.manifest, span, access, ac.signal)
  } catch (err) {
    if (ac.signal.aborted) {
      c.logger.debug({ id }, 'client went away; read cancelled')
      return
    }
    throw err
  } finally {
    res.off('close', onClose)
  }
}

function writeHead (res: ServerResponse, head: ContentHead, span: Span): void {
  if (span.partial) sendPartialHead(res, head, span.start, span.end)
  else sendContentHead(res, head)
}

async function streamSpan (c: ContentRouteComponents, res: ServerResponse, head: ContentHead, layout: ChunkLayout, span: Span, access: Access, signal: AbortSignal): Promise<void> {
  // Fixed or content-defined chunks alike: the manifest says where each starts.
  const startChunk = chunkAt(layout, span.start)
  const endChunk = chunkAt(layout, span.end) + 1
  const view = c.tracker.start(head.id, head.metadata.name, [span.start, span.end], [startChunk, endChunk])
  const opened = await c.engine.open(head.id, {
    ...access,
    signal,
    startChunk,
    endChunk,
    onProgress: (p) => { c.tracker.progress(view, Math.min(p.done, span.end - span.start + 1), p.sources) },
    onChunkState: (index, state) => { c.tracker.chunk(view, index, state) }
  })
  const body = opened.body
  let skip = span.start - chunkStart(layout, startChunk)
  let left = span.end - span.start + 1
  try {
    // Wait for the first chunk before committing to a status: when no source
    // can serve, the browser gets a 502 with the reason, not a cut-off body.
    let piece = await body.next()
    writeHead(res, head, span)
    while (piece.done !== true && left > 0) {
      let bytes = piece.value
      const free = freeWhenWritten(piece.value)
      if (skip > 0) {
        const drop = Math.min(skip, bytes.length)
        bytes = bytes.subarray(drop)
        skip -= drop
      }
      if (bytes.length > left) bytes = bytes.subarray(0, left)
      left -= bytes.length
      c.metrics?.bytesServed.inc(bytes.length)
      if (bytes.length > 0 && !res.write(bytes, free)) await once(res, 'drain', { signal })
      if (left > 0) piece = await body.next()
    }
    // A read that ended short must not look like a whole body: only a cut connection tells the client.
    if (left > 0) throw new UpstreamError(`the content ended ${left} bytes early`)
    res.end()
    c.tracker.end(view, 'done')
  } catch (err) {
    c.tracker.end(view, signal.aborted ? 'aborted' : 'failed', signal.aborted ? undefined : (err as Error).message)
    if (!signal.aborted && res.headersSent) {
      // Too late for a status: cutting the connection is how HTTP says the body is incomplete.
      c.logger.warn({ err, id: head.id }, 'content stream failed midway')
      res.destroy(err instanceof Error ? err : undefined)
      return
    }
    throw err
  } finally {
    await body.return?.()
  }
}
