/**
 * The viewer's side of a measurement: one plain HTTP GET whose body is
 * counted, not kept, timing the answer's headers, its first body byte, its
 * first MiB and its end. The client does as little as it can (no hashing of
 * the whole body) so that on two cores it never becomes the bottleneck it
 * measures; the head and tail MiB are hashed to catch wrong bytes.
 */
import { createHash, type Hash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { request, type IncomingMessage } from 'node:http'
import { HashMismatchError, TimeoutError, UpstreamError } from '../core/errors.ts'

export const MiB = 1024 * 1024
export const MB = 1e6

export interface DownloadResult {
  status: number
  bytes: number
  /** ms from the request until the response headers */
  headersMs: number
  /** ms from the request until the first body byte */
  ttfbMs: number
  /** ms until the first MiB of body (the whole body when it is shorter) */
  firstMiBMs: number
  /** seconds from the request until the last byte */
  seconds: number
  /** decimal megabytes (10^6 B) per second over the whole request */
  mbps: number
  /** sha256 of the first and of the last MiB, hex, `head:tail` */
  fingerprint: string
}

export interface DownloadOptions {
  /** the body must have exactly this many bytes (and the tail hash starts from it) */
  expectBytes: number
  /** fail unless the body matches this `head:tail` fingerprint (see fileFingerprint) */
  expectFingerprint?: string
  signal?: AbortSignal
  /** ms for the whole download (default 10 min) */
  timeout?: number
  /** called as bytes arrive, with the running total */
  onBytes?: (total: number) => void
  headers?: Record<string, string>
}

/** The `head:tail` fingerprint of a file on disk, to compare downloads against. */
export async function fileFingerprint (path: string, size: number): Promise<string> {
  const fh = await open(path, 'r')
  try {
    const span = Math.min(MiB, size)
    const head = Buffer.alloc(span)
    const tail = Buffer.alloc(span)
    await fh.read(head, 0, span, 0)
    await fh.read(tail, 0, span, size - span)
    return `${sha(head)}:${sha(tail)}`
  } finally {
    await fh.close()
  }
}

function sha (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Hashes the part of each arriving piece that falls in [from, to) of the body. */
class WindowHash {
  private readonly hash: Hash = createHash('sha256')
  private readonly from: number
  private readonly to: number

  constructor (from: number, to: number) {
    this.from = from
    this.to = to
  }

  update (piece: Uint8Array, offset: number): void {
    const start = Math.max(this.from, offset)
    const end = Math.min(this.to, offset + piece.length)
    if (end > start) this.hash.update(piece.subarray(start - offset, end - offset))
  }

  digest (): string {
    return this.hash.digest('hex')
  }
}

/**
 * Counts a body as it arrives and times its first byte, first MiB and end,
 * hashing only its head and tail MiB. Shared by every client a benchmark
 * runs (HTTP here, Helia's `cat` in helia-peer.ts), so all are timed alike.
 */
export class BodyMeter {
  readonly expectBytes: number
  private t0: number
  private readonly span: number
  private readonly head: WindowHash
  private readonly tail: WindowHash
  bytes = 0
  ttfbMs = -1
  firstMiBMs = -1

  /** @param t0 performance.now() when the request started */
  constructor (expectBytes: number, t0: number) {
    this.expectBytes = expectBytes
    this.t0 = t0
    this.span = Math.min(MiB, expectBytes)
    this.head = new WindowHash(0, this.span)
    this.tail = new WindowHash(expectBytes - this.span, expectBytes)
  }

  /** Moves the start of the clock (to after a setup step) before any byte arrived. */
  restart (t0: number): void {
    this.t0 = t0
  }

  add (piece: Uint8Array): void {
    if (this.ttfbMs < 0) this.ttfbMs = performance.now() - this.t0
    this.head.update(piece, this.bytes)
    this.tail.update(piece, this.bytes)
    this.bytes += piece.length
    if (this.firstMiBMs < 0 && this.bytes >= this.span) this.firstMiBMs = performance.now() - this.t0
  }

  /** Ends the measurement; throws if the body is short, long or (given `expectFingerprint`) wrong. */
  finish (what: string, expectFingerprint?: string): { bytes: number, ttfbMs: number, firstMiBMs: number, seconds: number, mbps: number, fingerprint: string } {
    const seconds = (performance.now() - this.t0) / 1000
    if (this.bytes !== this.expectBytes) throw new UpstreamError(`${what} gave ${this.bytes} bytes, expected ${this.expectBytes}`)
    const fingerprint = `${this.head.digest()}:${this.tail.digest()}`
    if (expectFingerprint != null && fingerprint !== expectFingerprint) {
      throw new HashMismatchError(`${what}: the first or last MiB differs from the published file`)
    }
    return { bytes: this.bytes, ttfbMs: Math.max(this.ttfbMs, 0), firstMiBMs: Math.max(this.firstMiBMs, 0), seconds, mbps: this.bytes / MB / seconds, fingerprint }
  }
}

export async function download (url: string, opts: DownloadOptions): Promise<DownloadResult> {
  const timeout = opts.timeout ?? 600_000
  const signal = AbortSignal.any([AbortSignal.timeout(timeout), ...(opts.signal != null ? [opts.signal] : [])])
  const t0 = performance.now()
  const meter = new BodyMeter(opts.expectBytes, t0)
  let headersMs = 0
  let status = 0
  try {
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      // A fresh connection per download, as a new viewer would open.
      const req = request(url, { agent: false, signal, headers: opts.headers }, resolve)
      req.once('error', reject)
      req.end()
    })
    headersMs = performance.now() - t0
    status = res.statusCode ?? 0
    if (status !== 200) {
      let text = ''
      for await (const piece of res) text += (piece as Buffer).toString()
      throw new UpstreamError(`GET ${url} answered ${status}: ${text.slice(0, 300)}`)
    }
    for await (const piece of res) {
      meter.add(piece as Buffer)
      opts.onBytes?.(meter.bytes)
    }
  } catch (err) {
    if (signal.aborted && opts.signal?.aborted !== true) throw new TimeoutError(`GET ${url} took over ${timeout} ms (${meter.bytes} bytes arrived)`, { cause: err })
    throw err
  }
  return { status, headersMs, ...meter.finish(`GET ${url}`, opts.expectFingerprint) }
}
