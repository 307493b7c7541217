import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { CID } from 'multiformats/cid'
import { matchesCid, parseBlobId } from '../../core/ids.ts'
import { replaceFile } from '../../core/replace-file.ts'
import type { Logger } from '../../core/log.ts'

export interface ChunkCacheInit {
  dir: string
  /** bytes of blobs kept on disk */
  maxBytes: number
  /** bytes of blobs waiting to be written; beyond it new blobs are not cached (default 32 MiB) */
  maxPendingBytes?: number
  logger: Logger
}

export interface CacheStats { bytes: number, maxBytes: number, entries: number, hits: number, misses: number }

/** What readers need of a blob cache; the content reader and the resolver take this, tests substitute their own. */
export interface BlobCache {
  /** true when `get` will most likely find the blob (a damaged file still turns into a miss) */
  has (cid: CID): boolean
  /** the blob, verified against `cid`, or undefined */
  get (cid: CID): Promise<Uint8Array | undefined>
  /**
   * Starts keeping a blob the caller has verified against `cid`; returns at
   * once, the write is the cache's business. `done` (when given) is called
   * once the cache holds no reference to `bytes` any more: the caller may
   * then reuse the buffer.
   */
  store (cid: CID, bytes: Uint8Array, done?: () => void): void
}

/**
 * Verified ciphertext chunks on disk, least recently used evicted first. Only
 * ciphertext is ever written: the key never touches the disk, so a stolen
 * cache reveals nothing. Hashes are checked again on read, so a damaged file
 * is a miss, never wrong bytes.
 */
export class ChunkCache implements BlobCache {
  private readonly dir: string
  private readonly maxBytes: number
  private readonly maxPendingBytes: number
  private readonly log: Logger
  /** Map order is recency order: the first entry is the next to evict. */
  private readonly entries = new Map<string, number>()
  /** Blobs being written, served from memory meanwhile: a seek back right after a chunk arrived must not go to the network. */
  private readonly pending = new Map<string, Uint8Array>()
  private readonly writes = new Set<Promise<void>>()
  private pendingBytes = 0
  private bytes = 0
  private hits = 0
  private misses = 0
  private closed = false

  constructor (init: ChunkCacheInit) {
    this.dir = init.dir
    this.maxBytes = init.maxBytes
    this.maxPendingBytes = init.maxPendingBytes ?? 32 * 1024 * 1024
    this.log = init.logger
  }

  /** Loads what an earlier run left, oldest access first, and drops stray temp files. */
  async open (): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    const found: Array<{ name: string, size: number, at: number }> = []
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name)
      if (name.endsWith('.tmp')) {
        await rm(path, { force: true })
        continue
      }
      if (!isBlobName(name)) {
        this.log.warn({ file: path }, 'file in the cache directory that is no blob; left alone')
        continue
      }
      const st = await stat(path)
      found.push({ name, size: st.size, at: st.mtimeMs })
    }
    found.sort((a, b) => a.at - b.at)
    for (const f of found) this.remember(f.name, f.size)
    await this.evict()
  }

  has (cid: CID): boolean {
    const key = cid.toString()
    return this.entries.has(key) || this.pending.has(key)
  }

  async get (cid: CID): Promise<Uint8Array | undefined> {
    const key = cid.toString()
    const waiting = this.pending.get(key)
    if (waiting !== undefined) {
      this.hits++
      // A copy: the writer's buffer may go back to its owner's pool as soon as the write ends.
      return Buffer.from(waiting)
    }
    const size = this.entries.get(key)
    if (size == null) {
      this.misses++
      return undefined
    }
    let bytes: Uint8Array
    try {
      bytes = await readFile(join(this.dir, key))
    } catch (err: any) {
      // ENOENT: evicted while we were reading, an ordinary miss.
      if (err?.code !== 'ENOENT') this.log.warn({ err, cid: key }, 'cached chunk unreadable; dropping it')
      await this.drop(key)
      this.misses++
      return undefined
    }
    if (!matchesCid(cid, bytes)) {
      this.log.warn({ cid: key }, 'cached chunk damaged on disk; dropping it')
      await this.drop(key)
      this.misses++
      return undefined
    }
    this.touch(key)
    this.hits++
    return bytes
  }

  /** Stores a blob the caller has already verified against `cid`; resolves once it is on disk (or was skipped). */
  async put (cid: CID, bytes: Uint8Array): Promise<void> {
    const key = cid.toString()
    if (this.closed || bytes.length > this.maxBytes) return
    if (this.entries.has(key)) {
      this.touch(key)
      return
    }
    // Another reader is writing the same blob; one copy is enough.
    if (this.pending.has(key)) return
    this.pending.set(key, bytes)
    this.pendingBytes += bytes.length
    try {
      await replaceFile(join(this.dir, key), bytes)
      this.remember(key, bytes.length)
    } finally {
      this.pending.delete(key)
      this.pendingBytes -= bytes.length
    }
    await this.evict()
  }

  /**
   * Fire-and-forget put for the hot path: the write is tracked (close waits
   * for it) and its failure logged. A disk slower than the network would
   * pile up blobs in memory, so beyond `maxPendingBytes` a blob is simply
   * not cached.
   */
  store (cid: CID, bytes: Uint8Array, done?: () => void): void {
    if (this.closed || this.has(cid)) {
      done?.()
      return
    }
    if (this.pendingBytes + bytes.length > this.maxPendingBytes) {
      this.log.debug({ cid: cid.toString() }, 'cache writes are behind; blob not cached')
      done?.()
      return
    }
    const write = this.put(cid, bytes).catch((err: unknown) => {
      this.log.warn({ err, cid: cid.toString() }, 'could not write a blob to the cache')
    }).finally(() => {
      this.writes.delete(write)
      done?.()
    })
    this.writes.add(write)
  }

  /** Waits for the writes in progress; nothing is cached afterwards. */
  async close (): Promise<void> {
    this.closed = true
    while (this.writes.size > 0) await Promise.allSettled([...this.writes])
  }

  stats (): CacheStats {
    return { bytes: this.bytes, maxBytes: this.maxBytes, entries: this.entries.size, hits: this.hits, misses: this.misses }
  }

  private remember (key: string, size: number): void {
    this.entries.set(key, size)
    this.bytes += size
  }

  private touch (key: string): void {
    const size = this.entries.get(key)
    // Evicted meanwhile (a read raced an eviction): nothing to refresh.
    if (size === undefined) return
    this.entries.delete(key)
    this.entries.set(key, size)
  }

  private async drop (key: string): Promise<void> {
    const size = this.entries.get(key)
    if (size == null) return
    this.entries.delete(key)
    this.bytes -= size
    await rm(join(this.dir, key), { force: true })
  }

  private async evict (): Promise<void> {
    while (this.bytes > this.maxBytes) {
      const oldest = this.entries.keys().next()
      if (oldest.done === true) return
      await this.drop(oldest.value)
    }
  }
}

function isBlobName (name: string): boolean {
  try {
    parseBlobId(name)
    return true
  } catch {
    return false
  }
}
