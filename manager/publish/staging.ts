/**
 * Staging: the encrypted blobs of uploads in progress, from the moment a
 * chunk is encrypted until its copies are confirmed on nodes (nodes fetch
 * them from here over HTTP while executing store orders). Each blob is read
 * R times right after it is staged, so blobs are kept in memory up to a byte
 * budget and only the overflow goes to files: a file costs an open, a stat,
 * a read and a close per copy, which was a fifth of the manager's CPU while
 * publishing. Nothing in staging survives a restart: an upload in progress
 * then has failed anyway.
 */
import { mkdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { parseBlobId } from '../../core/ids.ts'
import { replaceFile } from '../../core/replace-file.ts'

export interface StagingInit {
  /** bytes of blob buffers kept in memory (default 128 MiB); blobs that find no room are written to files */
  memoryBytes?: number
}

/** A staged blob's bytes, lent until `release` (a response still writing them keeps them from reuse). */
export interface StagedBytes {
  bytes: Uint8Array
  release: () => void
}

interface Held {
  buffer: Buffer
  size: number
  /** responses still writing the bytes */
  leases: number
  removed: boolean
}

export class Staging {
  readonly dir: string
  private readonly memoryBytes: number
  private readonly held = new Map<string, Held>()
  /**
   * Buffers no blob uses now, kept for the next ones: a blob lives for
   * seconds, long enough to reach V8's old generation, which is collected
   * rarely; reused buffers make no such garbage.
   */
  private readonly free: Buffer[] = []
  /** capacity of every buffer allocated and not given up: in use and free */
  private allocated = 0

  constructor (dir: string, init: StagingInit = {}) {
    this.dir = dir
    this.memoryBytes = init.memoryBytes ?? 128 * 1024 * 1024
  }

  /** Empties the directory: blobs left by a crashed run belong to no live upload. */
  async init (): Promise<void> {
    await rm(this.dir, { recursive: true, force: true })
    await mkdir(this.dir, { recursive: true })
  }

  /** Blob ids are validated CIDs, so a path built from one cannot escape the directory. */
  private pathOf (cid: string): string {
    return join(this.dir, parseBlobId(cid).toString())
  }

  /** Bytes of staged blobs held in memory now. */
  get memoryUsed (): number {
    let n = 0
    for (const h of this.held.values()) n += h.size
    return n
  }

  /** Capacity of the buffers allocated, in use or free: what staging costs in memory at most. */
  get memoryAllocated (): number {
    return this.allocated
  }

  /**
   * Stages a copy of `bytes` under its id: in a memory buffer while the
   * budget allows, else in a file written to a temporary name and renamed,
   * so a node never reads half a blob. No fsync: staging is not meant to
   * survive a crash.
   */
  async put (cid: string, bytes: Uint8Array): Promise<void> {
    const id = parseBlobId(cid).toString()
    if (this.held.has(id)) return
    const buffer = this.bufferFor(bytes.length)
    if (buffer != null) {
      buffer.set(bytes)
      this.held.set(id, { buffer, size: bytes.length, leases: 0, removed: false })
      return
    }
    await replaceFile(this.pathOf(id), bytes)
  }

  /** A staged blob's bytes, or undefined when it is not staged; call `release` once they are sent. */
  async read (cid: string): Promise<StagedBytes | undefined> {
    const id = parseBlobId(cid).toString()
    const h = this.held.get(id)
    if (h != null) {
      h.leases++
      let released = false
      return {
        bytes: h.buffer.subarray(0, h.size),
        release: () => {
          if (released) return
          released = true
          h.leases--
          if (h.removed && h.leases === 0) this.free.push(h.buffer)
        }
      }
    }
    try {
      return { bytes: await readFile(this.pathOf(id)), release: () => {} }
    } catch (err: any) {
      if (err?.code === 'ENOENT') return undefined
      throw err
    }
  }

  async remove (cid: string): Promise<void> {
    const id = parseBlobId(cid).toString()
    const h = this.held.get(id)
    if (h == null) {
      await rm(this.pathOf(id), { force: true })
      return
    }
    this.held.delete(id)
    h.removed = true
    if (h.leases === 0) this.free.push(h.buffer)
  }

  /** A free buffer of at least `size` bytes, a new one within the budget, or undefined. */
  private bufferFor (size: number): Buffer | undefined {
    const fit = this.free.findIndex(b => b.length >= size && b.length <= 2 * size)
    if (fit >= 0) return this.free.splice(fit, 1)[0]
    // Free buffers of the wrong size give their room to this one.
    while (this.allocated + size > this.memoryBytes && this.free.length > 0) this.allocated -= this.free.pop()!.length
    if (this.allocated + size > this.memoryBytes) return undefined
    this.allocated += size
    return Buffer.allocUnsafeSlow(size)
  }
}
