/**
 * Fetches blobs for store orders over HTTP, straight into the blob store:
 * sources are tried in order, every response body is hashed while it is
 * written and kept only if it matches the id. One undici Agent (keep-alive,
 * bounded connections per origin) serves every fetch of the node.
 */
import type { CID } from 'multiformats/cid'
import { Agent, request } from 'undici'
import { CapacityError, describeError, NoSourceError, TimeoutError, TooLargeError, UpstreamError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import { MAX_MANIFEST_BYTES } from '../core/manifest.ts'
import type { BlobStore } from './blob-store.ts'
import { COPY_HEADER } from '../core/data-plane-wire.ts'

export interface BlobFetcherComponents {
  store: Pick<BlobStore, 'write' | 'has'>
  logger: Logger
}

export interface BlobFetcherInit {
  /** ms one attempt at one source may take, headers and body (default 60 s) */
  timeoutMs?: number
  /** connections kept per origin (default 8) */
  connections?: number
  /** largest blob accepted (default 64 MiB, the manifest bound, far above any chunk size) */
  maxBlobBytes?: number
}

export class BlobFetcher {
  private readonly store: BlobFetcherComponents['store']
  private readonly log: Logger
  private readonly agent: Agent
  private readonly timeoutMs: number
  private readonly maxBlobBytes: number

  constructor (components: BlobFetcherComponents, init: BlobFetcherInit = {}) {
    this.store = components.store
    this.log = components.logger
    this.timeoutMs = init.timeoutMs ?? 60_000
    this.maxBlobBytes = init.maxBlobBytes ?? MAX_MANIFEST_BYTES
    this.agent = new Agent({
      connections: init.connections ?? 8,
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs
    })
  }

  /**
   * Gets blob `cid` from the first source that serves the right bytes. Throws
   * NoSourceError naming every failed attempt, or CapacityError at once (no
   * other source would make room).
   */
  async fetch (cid: CID, sources: readonly string[], signal: AbortSignal): Promise<void> {
    if (this.store.has(cid)) return
    const failures: string[] = []
    for (const url of sources) {
      signal.throwIfAborted()
      try {
        await this.fetchFrom(cid, url, signal)
        return
      } catch (err) {
        if (err instanceof CapacityError || signal.aborted) throw err
        this.log.debug({ blob: cid.toString(), url, err: describeError(err) }, 'source failed, trying the next')
        failures.push(`${url}: ${describeError(err)}`)
      }
    }
    throw new NoSourceError(`no source served ${cid.toString()}: ${failures.join('; ')}`)
  }

  private async fetchFrom (cid: CID, url: string, signal: AbortSignal): Promise<void> {
    const deadline = AbortSignal.timeout(this.timeoutMs)
    const attempt = AbortSignal.any([signal, deadline])
    try {
      const res = await request(url, { dispatcher: this.agent, method: 'GET', headers: { [COPY_HEADER]: '1' }, signal: attempt })
      try {
        if (res.statusCode !== 200) {
          // A small error body read to the end leaves the connection reusable.
          await res.body.dump()
          throw new UpstreamError(`HTTP ${res.statusCode}`)
        }
        const length = Number(res.headers['content-length'] ?? NaN)
        if (length > this.maxBlobBytes) throw new TooLargeError(`blob of ${length} bytes is over the ${this.maxBlobBytes} byte limit`)
        await this.store.write(cid, res.body, { signal: attempt, maxBytes: this.maxBlobBytes })
      } finally {
        // Unread or half-read bodies would pin the connection.
        if (!res.body.destroyed) res.body.destroy()
      }
    } catch (err) {
      if (deadline.aborted && !signal.aborted) throw new TimeoutError(`no complete answer within ${this.timeoutMs} ms`, { cause: err })
      throw err
    }
  }

  async close (): Promise<void> {
    await this.agent.close()
  }
}
