import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { CID } from 'multiformats/cid'
import { matchesCid } from '../core/ids.ts'
import type { Logger } from '../core/log.ts'

export interface ChunkCacheInit {
  dir: string
  /** bytes of blobs kept on disk */
  maxBytes: number
  logger: Logger
}

export interface CacheStats { bytes: number, maxBytes: number, entries: number, hits: number, misses: number }

/**
 * Verified ciphertext chunks on disk, least recently used evicted first. Only
 * ciphertext is ever written: the key never touches the disk, so a stolen
 * cache reveals nothing. Hashes are checked again on read, so a damaged file
 * is a miss, never wrong bytes.
 */
export class ChunkCache {
  private readonly dir: string
  private readonly maxBytes: number
  private readonly log: Logger
  /** Map order is recency order: the first entry is the next to evict. */
  private readonly entries = new Map<string, number>()
  private bytes = 0
  private hits = 0
  private misses = 0

  constructor (init: ChunkCacheInit) {
    this.dir = init.dir
    this.maxBytes = init.maxBytes
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
      const st = await stat(path)
      found.push({ name, size: st.size, at: st.mtimeMs })
    }
    found.sort((a, b) => a.at - b.at)
    for (const f of found) this.remember(f.name, f.size)
    await this.evict()
  }

  has (cid: CID): boolean {
    return this.entries.has(cid.toString())
  }

  async get (cid: CID): Promise<Uint8Array | undefined> {
    const key = cid.toString()
    const size = this.entries.get(key)
    if (size == null) {
      this.misses++
      return undefined
    }
    let bytes: Uint8Array
    try {
      bytes = await readFile(join(this.dir, key))
    } catch (err) {
      this.log.warn({ err, cid: key }, 'cached chunk unreadable; dropping it')
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
    this.touch(key, size)
    this.hits++
    return bytes
  }

  /** Stores a blob the caller has already verified against `cid`. */
  async put (cid: CID, bytes: Uint8Array): Promise<void> {
    const key = cid.toString()
    if (bytes.length > this.maxBytes) return
    if (this.entries.has(key)) {
      this.touch(key, bytes.length)
      return
    }
    const path = join(this.dir, key)
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
    await writeFile(tmp, bytes)
    await rename(tmp, path)
    this.remember(key, bytes.length)
    await this.evict()
  }

  stats (): CacheStats {
    return { bytes: this.bytes, maxBytes: this.maxBytes, entries: this.entries.size, hits: this.hits, misses: this.misses }
  }

  private remember (key: string, size: number): void {
    this.entries.set(key, size)
    this.bytes += size
  }

  private touch (key: string, size: number): void {
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
