/**
 * A test double of the data plane for the proxy's fetch tests: a BlobFetcher
 * serving a content's blobs from memory, where each source can be told to
 * stall a chunk (until the test releases it or the request is aborted) or
 * to fail it. Like the real fetcher it honours the request's signal and
 * deadline, and it records every request and how it ended, so tests assert
 * which source served which chunk and that a loser was aborted.
 */
import { TimeoutError, UpstreamError } from '../../../core/errors.ts'
import type { CID } from 'multiformats/cid'
import type { BlobFetcher, FetchBlobOptions, FetchedBlob } from '../../../proxy/fetch/chunk-fetcher.ts'
import { bitmapOf } from '../../../core/data-plane-wire.ts'
import type { ContentSource, SourceAddress } from '../../../proxy/resolve/sources.ts'
import type { TestContent } from '../proxy-standins.ts'

export type Behaviour = 'serve' | 'stall' | 'fail'

export interface PlaneCall {
  source: string
  chunk: number
  /** pending while in flight; aborted: the caller cancelled it before any byte was handed over */
  end: 'pending' | 'served' | 'aborted' | 'failed' | 'timeout'
}

export class PlaneDouble implements BlobFetcher {
  readonly calls: PlaneCall[] = []
  /** most requests in flight at once, over all chunks */
  maxInflight = 0
  private inflight = 0
  private readonly content: TestContent
  private readonly behaviour = new Map<string, Behaviour>()
  private readonly gates = new Map<string, Array<() => void>>()
  private readonly perChunk = new Map<number, number>()
  private readonly maxPerChunk = new Map<number, number>()

  constructor (content: TestContent) {
    this.content = content
  }

  /** Sources holding every chunk, named as given. */
  sources (names: string[], chunks?: number[]): ContentSource[] {
    const n = this.content.chunkIds.length
    const have = bitmapOf(chunks ?? Array.from({ length: n }, (_, i) => i), n)
    return names.map(id => ({ id, url: `http://${id}.invalid`, have }))
  }

  set (source: string, chunk: number, b: Behaviour): void {
    this.behaviour.set(`${source}/${chunk}`, b)
  }

  /** A stalled request of `source` for `chunk` answers now. */
  release (source: string, chunk: number): void {
    this.behaviour.set(`${source}/${chunk}`, 'serve')
    const waiting = this.gates.get(`${source}/${chunk}`) ?? []
    this.gates.delete(`${source}/${chunk}`)
    for (const open of waiting) open()
  }

  /** Most requests for `chunk` that were in flight at once. */
  maxConcurrent (chunk: number): number {
    return this.maxPerChunk.get(chunk) ?? 0
  }

  callsFor (chunk: number): PlaneCall[] {
    return this.calls.filter(c => c.chunk === chunk)
  }

  async fetchBlob (source: SourceAddress, cid: CID, options: FetchBlobOptions = {}): Promise<FetchedBlob> {
    const chunk = this.content.chunkIds.indexOf(cid.toString())
    const call: PlaneCall = { source: source.id, chunk, end: 'pending' }
    this.calls.push(call)
    this.inflight++
    this.maxInflight = Math.max(this.maxInflight, this.inflight)
    const now = (this.perChunk.get(chunk) ?? 0) + 1
    this.perChunk.set(chunk, now)
    this.maxPerChunk.set(chunk, Math.max(now, this.maxPerChunk.get(chunk) ?? 0))
    // A request stops counting the moment it is aborted, as a socket stops delivering bytes; not when its promise unwinds later.
    let counted = true
    const uncount = (): void => {
      if (!counted) return
      counted = false
      this.inflight--
      this.perChunk.set(chunk, (this.perChunk.get(chunk) ?? 1) - 1)
    }
    options.signal?.addEventListener('abort', uncount, { once: true })
    const started = performance.now()
    try {
      const slot = `${source.id}/${chunk}`
      if (this.behaviour.get(slot) === 'stall') await this.stall(slot, options)
      options.signal?.throwIfAborted()
      if (this.behaviour.get(slot) === 'fail') {
        call.end = 'failed'
        throw new UpstreamError(`${source.id} failed chunk ${chunk}`)
      }
      const bytes = this.content.blobs.get(cid.toString())
      if (bytes == null) {
        call.end = 'failed'
        throw new UpstreamError(`no blob ${cid.toString()}`)
      }
      call.end = 'served'
      const ms = performance.now() - started
      return { bytes, ttfbMs: ms, totalMs: ms }
    } catch (err) {
      if (call.end === 'pending') call.end = options.signal?.aborted === true ? 'aborted' : err instanceof TimeoutError ? 'timeout' : 'failed'
      throw err
    } finally {
      options.signal?.removeEventListener('abort', uncount)
      uncount()
    }
  }

  /** Waits for release, the caller's abort or the request's deadline, as a hung node's socket would. */
  private async stall (slot: string, options: FetchBlobOptions): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const signal = options.signal
      const timer = options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => { done(); reject(new TimeoutError(`${slot} took over ${options.timeoutMs} ms`)) }, options.timeoutMs)
      const onAbort = (): void => { done(); reject(signal?.reason) }
      const done = (): void => {
        if (timer != null) clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      const list = this.gates.get(slot) ?? []
      list.push(() => { done(); resolve() })
      this.gates.set(slot, list)
      if (signal?.aborted === true) onAbort()
    })
  }
}
