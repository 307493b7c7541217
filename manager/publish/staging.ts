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
  /** bytes of blobs held in memory at once (default 128 MiB); the rest are written to files */
  memoryBytes?: number
}

export class Staging {
  readonly dir: string
  private readonly memoryBytes: number
  private readonly inMemory = new Map<string, Uint8Array>()
  private heldBytes = 0

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

  /** Bytes held in memory now (for tests and metrics). */
  get memoryUsed (): number {
    return this.heldBytes
  }

  /**
   * Stages a blob under its id: in memory while the budget allows, else in a
   * file written to a temporary name and renamed, so a node never reads half
   * a blob. No fsync: staging is not meant to survive a crash.
   */
  async put (cid: string, bytes: Uint8Array): Promise<void> {
    const id = parseBlobId(cid).toString()
    if (this.inMemory.has(id)) return
    if (this.heldBytes + bytes.length <= this.memoryBytes) {
      this.inMemory.set(id, bytes)
      this.heldBytes += bytes.length
      return
    }
    await replaceFile(this.pathOf(id), bytes)
  }

  /** A staged blob's bytes, or undefined when it is not staged. */
  async read (cid: string): Promise<Uint8Array | undefined> {
    const id = parseBlobId(cid).toString()
    const held = this.inMemory.get(id)
    if (held != null) return held
    try {
      return await readFile(this.pathOf(id))
    } catch (err: any) {
      if (err?.code === 'ENOENT') return undefined
      throw err
    }
  }

  async remove (cid: string): Promise<void> {
    const id = parseBlobId(cid).toString()
    const held = this.inMemory.get(id)
    if (held != null) {
      this.inMemory.delete(id)
      this.heldBytes -= held.length
      return
    }
    await rm(this.pathOf(id), { force: true })
  }
}
