/**
 * Reusable read buffers for the data plane. A fresh megabyte per piece is
 * memory outside the JS heap that only a garbage collection gives back, and
 * at hundreds of pieces a second those collections were the node's largest
 * cost; a buffer handed back once the socket has taken its bytes is reused
 * instead. The pool keeps at most `keep` idle buffers, so a burst of
 * requests costs memory only while it lasts. A buffer never handed back (a
 * write that failed, a read cut short) is simply left to the collector.
 */
export interface BufferPoolInit {
  /** bytes of every buffer */
  size: number
  /** idle buffers kept for reuse (default 16) */
  keep?: number
}

export class BufferPool {
  readonly size: number
  private readonly keep: number
  private readonly idle: Buffer[] = []

  constructor (init: BufferPoolInit) {
    this.size = init.size
    this.keep = init.keep ?? 16
  }

  /** A buffer of `size` bytes whose contents are whatever it last held. */
  acquire (): Buffer {
    return this.idle.pop() ?? Buffer.allocUnsafeSlow(this.size)
  }

  /** Gives back a buffer nothing reads or writes any more. */
  release (buf: Buffer): void {
    if (buf.length === this.size && this.idle.length < this.keep) this.idle.push(buf)
  }

  /** Idle buffers held, for tests. */
  get idleCount (): number { return this.idle.length }
}
