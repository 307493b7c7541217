/**
 * Staging: the encrypted blobs of uploads in progress, as files, from the
 * moment a chunk is encrypted until its copies are confirmed on nodes (nodes
 * fetch them from here over HTTP while executing store orders). Nothing in
 * staging survives a restart: an upload in progress then has failed anyway.
 */
import { open, mkdir, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { parseBlobId } from '../../core/ids.ts'
import { replaceFile } from '../../core/replace-file.ts'

export interface StagedBlob {
  handle: FileHandle
  size: number
}

export class Staging {
  readonly dir: string

  constructor (dir: string) {
    this.dir = dir
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

  /**
   * Writes a blob under its id. Written to a temporary name and renamed, so a
   * node never reads half a blob. No fsync: staging is not meant to survive a crash.
   */
  async put (cid: string, bytes: Uint8Array): Promise<void> {
    await replaceFile(this.pathOf(cid), bytes)
  }

  /**
   * Opens a staged blob for reading, or undefined when it is not staged. The
   * caller closes the handle; the blob can be removed meanwhile without
   * cutting the read short.
   */
  async open (cid: string): Promise<StagedBlob | undefined> {
    let handle: FileHandle
    try {
      handle = await open(this.pathOf(cid), 'r')
    } catch (err: any) {
      if (err?.code === 'ENOENT') return undefined
      throw err
    }
    try {
      const st = await handle.stat()
      return { handle, size: st.size }
    } catch (err) {
      await handle.close()
      throw err
    }
  }

  async remove (cid: string): Promise<void> {
    await rm(this.pathOf(cid), { force: true })
  }
}
