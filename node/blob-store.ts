/**
 * Content-addressed blob files on disk: `<dir>/<xx>/<cid>`, where `xx` is the
 * first byte of the sha2-256 digest in hex (the CID strings of one codec share
 * a long constant prefix, the digest does not, so this spreads files evenly
 * over 256 directories).
 *
 * A blob appears under its final name only complete and verified: bytes go to
 * a temp file beside it, are fsynced, then renamed (and the directory fsynced).
 * A crash can leave temp files, never a partial blob; temp files are removed
 * on open.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, readdir, rename, rm, stat, unlink, utimes, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import type { CID } from 'multiformats/cid'
import { BadInputError, CapacityError, HashMismatchError, NotFoundError, TooLargeError } from '../core/errors.ts'
import { assertMatchesCid, parseBlobId } from '../core/ids.ts'
import type { Logger } from '../core/log.ts'
import { FdReader, openFd, syncDir, writeAll } from './blob-files.ts'

const TEMP_SUFFIX = '.tmp'

export interface BlobStoreInit {
  /** directory holding the blobs; created if missing */
  dir: string
  /** bytes the blobs may occupy in total */
  capacity: number
  logger: Logger
}

export interface BlobInfo {
  cid: CID
  size: number
  /** last time the blob was written or re-stored (ms since epoch); GC measures age from it */
  mtimeMs: number
}

export interface WriteOptions {
  signal?: AbortSignal
  /** refuse a stream longer than this many bytes (TooLargeError) */
  maxBytes?: number
}

/** Reads one blob from disk piece by piece; the file stays readable even if the blob is deleted meanwhile. */
export interface BlobReader {
  readonly size: number
  /** Reads up to `length` bytes at `position` into a fresh buffer; shorter only at the end of the file. */
  read: (position: number, length: number) => Promise<Buffer>
  /** Fills `target` from `position`; the bytes read, fewer only at the end of the file. */
  readInto: (target: Buffer, position: number) => Promise<number>
  close: () => Promise<void>
}

function digestPrefix (cid: CID): string {
  return Buffer.from(cid.multihash.digest.subarray(0, 1)).toString('hex')
}

export class BlobStore {
  readonly dir: string
  readonly capacity: number
  private readonly log: Logger
  private readonly blobs = new Map<string, BlobInfo>()
  /** bytes promised to writes in progress, so concurrent writes cannot overrun capacity together */
  private reserved = 0
  private usedBytes = 0
  /** shard directories known to exist, so a write does not ask again */
  private readonly dirsMade = new Set<string>()
  /** one write or delete at a time per blob id */
  private readonly busy = new Map<string, Promise<unknown>>()

  private constructor (init: BlobStoreInit) {
    this.dir = init.dir
    this.capacity = init.capacity
    this.log = init.logger
  }

  /** Opens (creating if needed) a store, removes temp files a crash left behind and counts what is held. */
  static async open (init: BlobStoreInit): Promise<BlobStore> {
    if (!Number.isFinite(init.capacity) || init.capacity < 0) throw new BadInputError(`invalid capacity ${init.capacity}`)
    const store = new BlobStore(init)
    await mkdir(store.dir, { recursive: true })
    await store.scan()
    return store
  }

  private async scan (): Promise<void> {
    let removed = 0
    for (const top of await readdir(this.dir, { withFileTypes: true })) {
      const topPath = join(this.dir, top.name)
      if (top.isFile() && top.name.endsWith(TEMP_SUFFIX)) {
        await unlink(topPath)
        removed++
        continue
      }
      if (!top.isDirectory() || !/^[0-9a-f]{2}$/.test(top.name)) {
        this.log.warn({ path: topPath }, 'ignoring unexpected entry in blob directory')
        continue
      }
      for (const entry of await readdir(topPath, { withFileTypes: true })) {
        const path = join(topPath, entry.name)
        if (entry.isFile() && entry.name.endsWith(TEMP_SUFFIX)) {
          await unlink(path)
          removed++
          continue
        }
        let cid: CID
        try {
          cid = parseBlobId(entry.name)
        } catch {
          this.log.warn({ path }, 'ignoring a file whose name is not a blob id')
          continue
        }
        if (!entry.isFile() || cid.toString() !== entry.name || digestPrefix(cid) !== top.name) {
          this.log.warn({ path }, 'ignoring a blob file in the wrong place')
          continue
        }
        const st = await stat(path)
        this.blobs.set(entry.name, { cid, size: st.size, mtimeMs: st.mtimeMs })
        this.usedBytes += st.size
      }
    }
    if (removed > 0) this.log.info({ removed }, 'removed temp files left by an interrupted write')
    this.log.info({ blobs: this.blobs.size, used: this.usedBytes, capacity: this.capacity }, 'blob store opened')
  }

  /** Bytes held by complete blobs. */
  get used (): number { return this.usedBytes }

  /** Number of blobs held. */
  get count (): number { return this.blobs.size }

  /** Bytes still free for new blobs (excluding space promised to writes in progress). */
  get free (): number { return Math.max(0, this.capacity - this.usedBytes - this.reserved) }

  has (cid: CID | string): boolean {
    return this.blobs.has(cid.toString())
  }

  /** Byte size of a held blob, undefined when absent. */
  size (cid: CID): number | undefined {
    return this.blobs.get(cid.toString())?.size
  }

  info (cid: CID): BlobInfo | undefined {
    const info = this.blobs.get(cid.toString())
    return info == null ? undefined : { ...info }
  }

  /** A snapshot of every held blob. */
  list (): BlobInfo[] {
    return [...this.blobs.values()].map(b => ({ ...b }))
  }

  private pathOf (cid: CID): string {
    return join(this.dir, digestPrefix(cid), cid.toString())
  }

  /** Runs `fn` once no other write or delete of the same blob is running. */
  private async exclusive<T> (key: string, fn: () => Promise<T>): Promise<T> {
    for (let prev = this.busy.get(key); prev != null; prev = this.busy.get(key)) {
      await prev.catch(() => {})
    }
    const run = fn()
    this.busy.set(key, run)
    try {
      return await run
    } finally {
      if (this.busy.get(key) === run) this.busy.delete(key)
    }
  }

  private reserve (n: number): void {
    if (this.usedBytes + this.reserved + n > this.capacity) {
      throw new CapacityError(`not enough space: ${n} more bytes would exceed the capacity of ${this.capacity} bytes (used ${this.usedBytes}, in progress ${this.reserved})`)
    }
    this.reserved += n
  }

  /** A blob stored again is fresh again: its GC grace period restarts. */
  private async touch (cid: CID): Promise<void> {
    const key = cid.toString()
    const now = new Date()
    try {
      await utimes(this.pathOf(cid), now, now)
    } catch (err: any) {
      if (err?.code !== 'ENOENT') throw err
      this.forget(key)
      return
    }
    const info = this.blobs.get(key)
    if (info != null) info.mtimeMs = now.getTime()
  }

  private forget (key: string): void {
    const info = this.blobs.get(key)
    if (info == null) return
    this.blobs.delete(key)
    this.usedBytes -= info.size
  }

  /**
   * Keeps `bytes` as blob `cid` after checking they hash to it. Refused with
   * HashMismatchError or CapacityError before anything is written. Storing a
   * blob already held only refreshes its mtime.
   */
  async put (cid: CID, bytes: Uint8Array): Promise<void> {
    assertMatchesCid(cid, bytes)
    const key = cid.toString()
    await this.exclusive(key, async () => {
      if (this.blobs.has(key)) {
        await this.touch(cid)
        return
      }
      this.reserve(bytes.length)
      try {
        await this.commit(cid, async (fh) => {
          await fh.writeFile(bytes)
          // already checked above
          return { digest: cid.multihash.digest, size: bytes.length }
        })
      } finally {
        this.reserved -= bytes.length
      }
    })
  }

  /**
   * Streams a blob to disk, hashing as it goes; it is kept only if the whole
   * stream hashes to `cid`. Memory stays at one piece whatever the blob size.
   * Returns the blob's size.
   */
  async write (cid: CID, source: AsyncIterable<Uint8Array>, options: WriteOptions = {}): Promise<number> {
    const key = cid.toString()
    return await this.exclusive(key, async () => {
      options.signal?.throwIfAborted()
      const held = this.blobs.get(key)
      if (held != null) {
        await this.touch(cid)
        return held.size
      }
      let written = 0
      try {
        await this.commit(cid, async (fh) => {
          // The pieces are kept and written with one writev: a write per
          // network piece cost more CPU than hashing the bytes (profiled).
          const hash = createHash('sha256')
          const pieces: Uint8Array[] = []
          for await (const piece of source) {
            options.signal?.throwIfAborted()
            if (options.maxBytes != null && written + piece.length > options.maxBytes) {
              throw new TooLargeError(`blob ${key} is larger than ${options.maxBytes} bytes`)
            }
            this.reserve(piece.length)
            written += piece.length
            hash.update(piece)
            pieces.push(piece)
          }
          options.signal?.throwIfAborted()
          await writeAll(fh, pieces)
          return { digest: hash.digest(), size: written }
        })
      } finally {
        this.reserved -= written
      }
      return written
    })
  }

  /**
   * Writes through a temp file: `fill` writes the bytes and returns their
   * sha2-256, which must match the id before the file takes its final name.
   */
  private async commit (cid: CID, fill: (fh: FileHandle) => Promise<{ digest: Uint8Array, size: number }>): Promise<void> {
    const finalPath = this.pathOf(cid)
    const dir = join(this.dir, digestPrefix(cid))
    if (!this.dirsMade.has(dir)) {
      await mkdir(dir, { recursive: true })
      this.dirsMade.add(dir)
    }
    const tmp = join(dir, `${cid.toString()}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`)
    let committed = false
    const fh = await open(tmp, 'wx', 0o644)
    try {
      const { digest, size } = await fill(fh)
      if (!Buffer.from(digest).equals(Buffer.from(cid.multihash.digest))) {
        throw new HashMismatchError(`blob does not match ${cid.toString()}`)
      }
      await fh.sync()
      await fh.close()
      await rename(tmp, finalPath)
      committed = true
      await syncDir(dir)
      // The bytes written are the file's size; its mtime is now, give or take the clock's grain (GC works in minutes).
      this.blobs.set(cid.toString(), { cid, size, mtimeMs: Date.now() })
      this.usedBytes += size
    } finally {
      if (!committed) {
        await fh.close().catch(() => {})
        await rm(tmp, { force: true })
      }
    }
  }

  /** The whole blob in memory (for manifests); NotFoundError when absent. */
  async read (cid: CID): Promise<Uint8Array> {
    const reader = await this.openReader(cid)
    try {
      const bytes = await reader.read(0, reader.size)
      if (bytes.length !== reader.size) throw new NotFoundError(`blob ${cid.toString()} was truncated on disk`)
      return bytes
    } finally {
      await reader.close()
    }
  }

  /**
   * Opens a held blob for reading in pieces; NotFoundError when absent. The
   * size is the one recorded when the blob was stored (blobs never change
   * under their id), so opening costs one system call, not two.
   */
  async openReader (cid: CID): Promise<BlobReader> {
    const key = cid.toString()
    const info = this.blobs.get(key)
    if (info == null) throw new NotFoundError(`blob ${key} is not held here`)
    let fd: number
    try {
      fd = await openFd(this.pathOf(cid))
    } catch (err: any) {
      if (err?.code !== 'ENOENT') throw err
      this.log.warn({ cid: key }, 'blob file vanished from disk; forgetting it')
      this.forget(key)
      throw new NotFoundError(`blob ${key} is not held here`, { cause: err })
    }
    return new FdReader(fd, info.size)
  }

  /**
   * Marks a held blob as wanted now (its GC grace restarts); false when it is
   * not held. Serialised with deletes, so a blob refreshed here is not taken
   * by a sweep that looked at it just before.
   */
  async refresh (cid: CID): Promise<boolean> {
    const key = cid.toString()
    return await this.exclusive(key, async () => {
      if (!this.blobs.has(key)) return false
      await this.touch(cid)
      return this.blobs.has(key)
    })
  }

  /**
   * Removes a blob; true when it was held and is now gone. With `olderThan`
   * (ms since epoch) a blob written or refreshed since then is kept.
   * Readers that already opened it finish undisturbed.
   */
  async delete (cid: CID, options: { olderThan?: number } = {}): Promise<boolean> {
    const key = cid.toString()
    return await this.exclusive(key, async () => {
      const info = this.blobs.get(key)
      if (info == null) return false
      if (options.olderThan != null && info.mtimeMs > options.olderThan) return false
      try {
        await unlink(this.pathOf(cid))
      } catch (err: any) {
        if (err?.code !== 'ENOENT') throw err
      }
      this.forget(key)
      return true
    })
  }

  /** Waits for writes in progress; the store holds no open handles between calls. */
  async close (): Promise<void> {
    await Promise.allSettled([...this.busy.values()])
  }
}
