/**
 * Reusable receive buffers for chunk blobs. Every chunk of a content has the
 * same size but the last, so a buffer freed by one chunk fits the next: the
 * proxy stops allocating (and the garbage collector stops reclaiming) a
 * megabyte per chunk received. A buffer is lent to exactly one holder at a
 * time; one given back twice, or never lent, is refused loudly, since a
 * buffer handed out while still in use would mix one chunk's bytes into
 * another's.
 */
import { CdnError } from '../../core/errors.ts'

export class PoolMisuseError extends CdnError {
  constructor (message: string) {
    super(message, 'ERR_BLOB_POOL')
  }
}

export interface BlobPoolInit {
  /** bytes of idle buffers kept for reuse (default 32 MiB, as much as the disk cache may have waiting to be written); beyond it a returned buffer is left to the collector */
  maxIdleBytes?: number
}

export interface PoolStats {
  /** buffers lent and not given back (those never given back included) */
  lent: number
  /** bytes of idle buffers waiting to be reused */
  idleBytes: number
  /** takes served by an idle buffer */
  reused: number
  /** takes that had to allocate */
  allocated: number
}

export class BlobPool {
  private readonly idle = new Map<number, Buffer[]>()
  /** weak: a buffer its holder forgot to give back is collected like any other, not kept here forever */
  private readonly lent = new WeakSet<Buffer>()
  private lentCount = 0
  private readonly maxIdleBytes: number
  private idleBytes = 0
  private reused = 0
  private allocated = 0

  constructor (init: BlobPoolInit = {}) {
    this.maxIdleBytes = init.maxIdleBytes ?? 32 * 1024 * 1024
  }

  /** A buffer of exactly `size` bytes, its content undefined, lent until `give`. */
  take (size: number): Buffer {
    const list = this.idle.get(size)
    let buf = list?.pop()
    if (buf !== undefined) {
      this.idleBytes -= size
      this.reused++
    } else {
      // Not from Node's shared slab (allocUnsafe would be for small sizes): a pooled buffer must own its memory.
      buf = Buffer.from(new ArrayBuffer(size))
      this.allocated++
    }
    this.lent.add(buf)
    this.lentCount++
    return buf
  }

  /** Takes back a buffer lent by `take`; its holder must not touch it afterwards. */
  give (buf: Buffer): void {
    if (!this.lent.delete(buf)) throw new PoolMisuseError('a buffer was given back that is not lent (given twice, or not from this pool)')
    this.lentCount--
    if (this.idleBytes + buf.length > this.maxIdleBytes) return
    let list = this.idle.get(buf.length)
    if (list === undefined) {
      list = []
      this.idle.set(buf.length, list)
    }
    list.push(buf)
    this.idleBytes += buf.length
  }

  isLent (buf: Uint8Array): boolean {
    return this.lent.has(buf as Buffer)
  }

  stats (): PoolStats {
    return { lent: this.lentCount, idleBytes: this.idleBytes, reused: this.reused, allocated: this.allocated }
  }
}

/**
 * A blob with more than one reader (the reader decrypting it, the cache
 * writing it): it goes back to the pool when the last of them lets go.
 */
export class SharedBlob {
  private holders = 1
  private readonly free: () => void

  constructor (free: () => void) {
    this.free = free
  }

  /** One more holder; each calls the function returned once, when done. */
  share (): () => void {
    this.holders++
    return once(() => { this.drop() })
  }

  drop (): void {
    if (this.holders <= 0) throw new PoolMisuseError('a shared blob was let go more often than it was held')
    if (--this.holders === 0) this.free()
  }
}

function once (f: () => void): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    f()
  }
}
