import { createHash, type Hash } from 'node:crypto'
import { Pool } from 'undici'
import type { CID } from 'multiformats/cid'
import { CdnError, HashMismatchError, TimeoutError, UpstreamError } from '../../core/errors.ts'
import { matchesCid } from '../../core/ids.ts'
import { BlobPool } from './blob-pool.ts'
import { BlobLines, NoLengthError, SizeMismatch } from './blob-lines.ts'
import type { Logger } from '../../core/log.ts'
import type { DeadlineClock } from './deadline.ts'
import { parseHave } from '../../core/data-plane-wire.ts'
import { discardBody, errorMessageOf, readJson } from './http-body.ts'
import type { SourceAddress } from '../resolve/sources.ts'
import { withDefaults } from '../../core/with-defaults.ts'

export interface FetchBlobOptions {
  /** exact blob size when known (a chunk: its length + 16 tag bytes); any other size is a bad copy */
  expectedBytes?: number
  /** when the size is not known (a manifest), the most we accept */
  maxBytes?: number
  signal?: AbortSignal
  /** ms for the whole request, headers and body (default: the fetcher's) */
  timeoutMs?: number
}

export interface FetchedBlob {
  /** verified bytes: they hash to the requested id */
  bytes: Uint8Array
  /** ms until the response headers arrived */
  ttfbMs: number
  /** ms until the last byte arrived */
  totalMs: number
  /**
   * present when `bytes` is a pooled buffer: call it exactly once when done
   * with them (nothing may read them afterwards; the buffer is reused)
   */
  release?: () => void
}

/** The part of a chunk fetcher the content reader and the resolver use; tests substitute their own. */
export interface BlobFetcher {
  fetchBlob (source: SourceAddress, cid: CID, options?: FetchBlobOptions): Promise<FetchedBlob>
}

export interface HaveFetcher {
  fetchHave (source: SourceAddress, contentId: string, chunks: number, options?: { signal?: AbortSignal, timeoutMs?: number }): Promise<Uint8Array>
}

export interface ChunkFetcherInit {
  /** keep-alive connections per source (default 4) */
  connections?: number
  /** default ms for one request (default 30 s) */
  timeoutMs?: number
  /** ms to open a connection (default 5 s) */
  connectTimeoutMs?: number
  /** ms an idle connection is kept (default 30 s) */
  keepAliveMs?: number
}

export interface ChunkFetcherComponents {
  deadlines: DeadlineClock
  logger: Logger
  /** reusable receive buffers for blobs of a known size (default: a pool of the fetcher's own) */
  pool?: BlobPool
}

const HAVE_MAX_BYTES = 8 * 1024 * 1024

/**
 * The proxy's client of the nodes' data plane: one keep-alive undici Pool per
 * source with a bounded number of connections, every request under a deadline
 * and the caller's signal, and no byte handed out before its hash is checked.
 */
export class ChunkFetcher implements BlobFetcher, HaveFetcher {
  private readonly pools = new Map<string, Pool>()
  private readonly lines = new Map<string, BlobLines>()
  private readonly deadlines: DeadlineClock
  private readonly logger: Logger
  private readonly blobPool: BlobPool
  private readonly init: Required<ChunkFetcherInit>
  private closed = false

  constructor (components: ChunkFetcherComponents, init: ChunkFetcherInit = {}) {
    this.deadlines = components.deadlines
    this.logger = components.logger
    this.blobPool = components.pool ?? new BlobPool()
    this.init = withDefaults<ChunkFetcherInit>({ connections: 4, timeoutMs: 30_000, connectTimeoutMs: 5000, keepAliveMs: 30_000 }, init)
  }

  async fetchBlob (source: SourceAddress, cid: CID, options: FetchBlobOptions = {}): Promise<FetchedBlob> {
    const id = cid.toString()
    const what = `${source.url} /chunk/${id}`
    const url = new URL(source.url)
    const lean = options.expectedBytes !== undefined && url.protocol === 'http:'
    return this.withDeadline(what, options, async (signal) => {
      if (lean) {
        try {
          return await this.fetchLean(url, id, cid, options.expectedBytes!, what, signal)
        } catch (err) {
          // A 200 without Content-Length (chunked): not the nodes' way, but the general client still judges it.
          if (!(err instanceof NoLengthError)) throw err
        }
      }
      const started = performance.now()
      const { statusCode, headers, body } = await this.pool(source.url).request({ path: `/chunk/${id}`, method: 'GET', signal })
      const ttfbMs = performance.now() - started
      if (statusCode !== 200) {
        const { message } = await errorMessageOf(body, statusCode)
        throw new UpstreamError(`${what} answered ${statusCode}: ${message}`)
      }
      const declared = headers['content-length'] === undefined ? undefined : Number(headers['content-length'])
      if (options.expectedBytes !== undefined && declared !== undefined && declared !== options.expectedBytes) {
        discardBody(body)
        throw new HashMismatchError(`${what} is ${declared} bytes, expected ${options.expectedBytes}`)
      }
      const limit = options.expectedBytes ?? options.maxBytes ?? Infinity
      if (declared !== undefined && declared > limit) {
        discardBody(body)
        throw new UpstreamError(`${what} is ${declared} bytes, more than the ${limit} accepted`)
      }
      const size = options.expectedBytes ?? declared
      if (size === undefined) {
        const bytes = await readUpTo(body, limit, what)
        if (!matchesCid(cid, bytes)) throw new HashMismatchError(`${what} does not match its id`)
        return { bytes, ttfbMs, totalMs: performance.now() - started }
      }
      const pool = this.blobPool
      const out = pool.take(size)
      try {
        // Hashed piece by piece as it lands, while each piece is still in the CPU's cache: no second pass over the blob.
        const digest = await readExactly(body, out, what)
        if (!digestMatches(cid, digest)) throw new HashMismatchError(`${what} does not match its id`)
      } catch (err) {
        pool.give(out)
        throw err
      }
      return { bytes: out, ttfbMs, totalMs: performance.now() - started, release: onceOnly(() => { pool.give(out) }) }
    })
  }

  /** A chunk of known size over a plain-HTTP data plane: read straight into a pooled buffer, hashed as it lands. */
  private async fetchLean (url: URL, id: string, cid: CID, size: number, what: string, signal: AbortSignal): Promise<FetchedBlob> {
    const started = performance.now()
    const pool = this.blobPool
    const out = pool.take(size)
    try {
      const answer = await this.linesTo(url).get(`/chunk/${id}`, out, signal)
      if (!('digest' in answer)) {
        throw new UpstreamError(`${what} answered ${answer.status}: ${errorText(answer.text, answer.status)}`)
      }
      if (!digestMatches(cid, answer.digest)) throw new HashMismatchError(`${what} does not match its id`)
      return { bytes: out, ttfbMs: answer.headMs, totalMs: performance.now() - started, release: onceOnly(() => { pool.give(out) }) }
    } catch (err) {
      pool.give(out)
      if (err instanceof SizeMismatch) throw new HashMismatchError(`${what} is ${err.declared} bytes, expected ${err.expected}`)
      throw err
    }
  }

  private linesTo (url: URL): BlobLines {
    if (this.closed) throw new UpstreamError('chunk fetcher is closed')
    let lines = this.lines.get(url.origin)
    if (lines == null) {
      lines = new BlobLines({
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: Number(url.port === '' ? 80 : url.port),
        connections: this.init.connections,
        connectTimeoutMs: this.init.connectTimeoutMs,
        // Under the node's own keep-alive (Node's default, 5 s), so a connection is rarely found closed by the other end.
        keepAliveMs: Math.min(this.init.keepAliveMs, 4000)
      })
      this.lines.set(url.origin, lines)
    }
    return lines
  }

  async fetchHave (source: SourceAddress, contentId: string, chunks: number, options: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<Uint8Array> {
    const what = `${source.url} /have/${contentId}`
    return this.withDeadline(what, options, async (signal) => {
      const { statusCode, body } = await this.pool(source.url).request({ path: `/have/${contentId}`, method: 'GET', signal })
      if (statusCode !== 200) {
        const { message } = await errorMessageOf(body, statusCode)
        throw new UpstreamError(`${what} answered ${statusCode}: ${message}`)
      }
      return parseHave(await readJson(body, HAVE_MAX_BYTES, what), contentId, chunks)
    })
  }

  async close (): Promise<void> {
    this.closed = true
    const pools = [...this.pools.values()]
    this.pools.clear()
    for (const lines of this.lines.values()) lines.close()
    this.lines.clear()
    // destroy, not close: close would wait for in-flight bodies nobody will read any more.
    await Promise.all(pools.map(async p => { await p.destroy() }))
  }

  private pool (url: string): Pool {
    if (this.closed) throw new UpstreamError('chunk fetcher is closed')
    const origin = new URL(url).origin
    let pool = this.pools.get(origin)
    if (pool == null) {
      pool = new Pool(origin, {
        connections: this.init.connections,
        keepAliveTimeout: this.init.keepAliveMs,
        connect: { timeout: this.init.connectTimeoutMs },
        // The deadline governs; these only stop undici's own 300 s defaults from outliving it.
        headersTimeout: this.init.timeoutMs,
        bodyTimeout: this.init.timeoutMs
      })
      this.pools.set(origin, pool)
    }
    return pool
  }

  /** Runs one request under a deadline; any failure leaves as a CdnError, the caller's own abort as its reason. */
  private async withDeadline<T> (what: string, options: { signal?: AbortSignal, timeoutMs?: number }, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const ms = options.timeoutMs ?? this.init.timeoutMs
    const deadline = this.deadlines.start(ms, options.signal, `${what} took over ${ms} ms`)
    try {
      return await run(deadline.signal)
    } catch (err) {
      if (deadline.expired) throw new TimeoutError(`${what} took over ${ms} ms`, { cause: err })
      if (options.signal?.aborted === true) throw options.signal.reason
      if (err instanceof CdnError) throw err
      this.logger.debug({ err, what }, 'source request failed')
      throw new UpstreamError(`${what} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
    } finally {
      deadline.clear()
    }
  }
}

/**
 * Reads a body into `out`, which has the size the manifest promises, and
 * returns the SHA-256 of what came; a longer body is a wrong blob, a shorter
 * one a broken transfer.
 */
async function readExactly (body: AsyncIterable<unknown>, out: Buffer, what: string): Promise<Buffer> {
  const size = out.length
  const hash: Hash = createHash('sha256')
  let off = 0
  for await (const piece of body) {
    const b = piece as Buffer
    // Throwing out of the loop destroys the body through its iterator.
    if (off + b.length > size) throw new HashMismatchError(`${what} is longer than the expected ${size} bytes`)
    hash.update(b)
    b.copy(out, off)
    off += b.length
  }
  if (off !== size) throw new UpstreamError(`${what} ended after ${off} of ${size} bytes`)
  return hash.digest()
}

function digestMatches (cid: CID, digest: Uint8Array): boolean {
  const want = cid.multihash.digest
  // The id's hash must be sha2-256 (parseBlobId admits no other), so the lengths agree unless the id is foreign.
  return cid.multihash.code === SHA2_256 && Buffer.from(digest.buffer, digest.byteOffset, digest.length).equals(want)
}

const SHA2_256 = 0x12

/** The message of a `{ error: { code, message } }` answer (PROTOCOLS.md), or the start of whatever text came. */
function errorText (text: string, status: number): string {
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } }
    if (typeof parsed?.error?.message === 'string') return parsed.error.message
  } catch {
    // Not JSON: the raw text is all there is.
  }
  return text.trim().slice(0, 200) || `HTTP ${status}`
}

function onceOnly (f: () => void): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    f()
  }
}

async function readUpTo (body: AsyncIterable<unknown>, limit: number, what: string): Promise<Uint8Array> {
  const parts: Buffer[] = []
  let size = 0
  for await (const piece of body) {
    const b = piece as Buffer
    size += b.length
    if (size > limit) throw new UpstreamError(`${what} is over the ${limit} bytes accepted`)
    parts.push(b)
  }
  return Buffer.concat(parts)
}
