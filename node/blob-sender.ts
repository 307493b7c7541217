/**
 * Sends one blob's bytes as a response body, as cheaply as the work allows:
 * each read fills a pooled buffer with a whole chunk blob in one system call,
 * and under an egress cap the bytes go out in slices, each paid for from the
 * node's one token bucket (the first while the read is still running), so the
 * cap holds over time and across concurrent responses. The response's
 * backpressure is honoured, so memory per response stays at one buffer and a
 * slow client costs nothing but its wait.
 */
import type { ServerResponse } from 'node:http'
import type { BandwidthLimiter } from '../core/bandwidth-limiter.ts'
import { InterruptedError, NotFoundError } from '../core/errors.ts'
import type { BlobReader } from './blob-store.ts'
import type { BufferPool } from './buffer-pool.ts'

export interface BlobSendComponents {
  limiter: Pick<BandwidthLimiter, 'unlimited' | 'take'>
  /** read buffers; their size is the most read from disk at once */
  pool: BufferPool
}

export interface BlobSendOptions {
  /** bytes paid for and written per step under a cap */
  slice: number
  /** aborted when the response must stop (client gone, deadline, shutdown) */
  signal: AbortSignal
  /** called as bytes are handed to the socket */
  onSent: (n: number) => void
}

/** Writes all of `reader`'s bytes to `res`, then ends it. Rejects (writing no more) when aborted or when the file is shorter than its size. */
export async function sendBlob (c: BlobSendComponents, res: ServerResponse, reader: Pick<BlobReader, 'size' | 'readInto'>, o: BlobSendOptions): Promise<void> {
  const slice = c.limiter.unlimited ? Infinity : o.slice
  for (let position = 0; position < reader.size;) {
    const buf = c.pool.acquire()
    const view = buf.subarray(0, Math.min(buf.length, reader.size - position))
    const read = reader.readInto(view, position)
    // Paid while the read runs; a refused payment leaves the buffer to the collector, as the read may still be filling it.
    const first = Math.min(slice, view.length)
    if (!c.limiter.unlimited) await c.limiter.take(first, o.signal)
    const got = await read
    if (got !== view.length) throw new NotFoundError(`blob shrank on disk while being served: ${got} of ${view.length} bytes at ${position}`)
    // Writes complete in order: once the last slice is flushed the socket needs the buffer no more.
    position += view.length
    await writeSlices(c, res, view, first, slice, o, position >= reader.size, (err) => { if (err == null) c.pool.release(buf) })
  }
  res.end()
}

async function writeSlices (c: BlobSendComponents, res: ServerResponse, view: Buffer, firstPaid: number, slice: number, o: BlobSendOptions, endsBlob: boolean, onLastFlushed: (err?: Error | null) => void): Promise<void> {
  for (let at = 0; at < view.length;) {
    const n = at === 0 ? firstPaid : Math.min(slice, view.length - at)
    if (at > 0) await c.limiter.take(n, o.signal)
    o.signal.throwIfAborted()
    const last = at + n >= view.length
    const ok = last ? res.write(view.subarray(at, at + n), onLastFlushed) : res.write(view.subarray(at, at + n))
    o.onSent(n)
    at += n
    // After the blob's last bytes only `end` follows, which waits for the flush itself.
    if (!ok && !(last && endsBlob)) await drained(res, o.signal)
  }
}

/** Resolves on the response's next 'drain'; rejects when `signal` aborts first. */
async function drained (res: ServerResponse, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted()
  await new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      res.off('drain', onDrain)
      reject(signal.reason instanceof Error ? signal.reason : new InterruptedError('response aborted'))
    }
    const onDrain = (): void => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }
    res.once('drain', onDrain)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
