/**
 * The file operations under the blob store, each shaped by what the profile
 * showed: whole-blob writes in one writev, directory syncs after renames, and
 * readers on plain descriptors.
 */
import { closeSync, open as fsOpen, read as fsRead } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import type { BlobReader } from './blob-store.ts'

/** writev takes at most IOV_MAX (1024 on Linux) buffers at once. */
const IOV_MAX = 1024

/** Writes the pieces in order at the file's current position. */
export async function writeAll (fh: FileHandle, pieces: Uint8Array[]): Promise<void> {
  for (let i = 0; i < pieces.length; i += IOV_MAX) {
    const batch = pieces.slice(i, i + IOV_MAX)
    const expected = batch.reduce((n, p) => n + p.length, 0)
    const { bytesWritten } = await fh.writev(batch)
    // A regular file takes a writev whole unless the disk fills; writeFile then finishes the rest or reports why not.
    if (bytesWritten < expected) await fh.writeFile(Buffer.concat(batch).subarray(bytesWritten))
  }
}

/** A rename is durable only once the directory entry is on disk too. */
export async function syncDir (dir: string): Promise<void> {
  const dh = await open(dir, 'r')
  try {
    await dh.sync()
  } finally {
    await dh.close()
  }
}

/**
 * A plain descriptor rather than a FileHandle: the data plane opens one per
 * request, and each FileHandle operation is a promise and a hop through the
 * thread pool. Closing a descriptor opened for reading does no disk I/O, so
 * it is done in place, which spares one more hop per request.
 */
export class FdReader implements BlobReader {
  readonly size: number
  private readonly fd: number

  constructor (fd: number, size: number) {
    this.fd = fd
    this.size = size
  }

  async read (position: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(Math.max(0, Math.min(length, this.size - position)))
    const filled = await this.readInto(buf, position)
    return filled === buf.length ? buf : buf.subarray(0, filled)
  }

  async readInto (target: Buffer, position: number): Promise<number> {
    let filled = 0
    while (filled < target.length) {
      const n = await readFd(this.fd, target, filled, target.length - filled, position + filled)
      if (n === 0) break
      filled += n
    }
    return filled
  }

  async close (): Promise<void> {
    closeSync(this.fd)
  }
}

export async function openFd (path: string): Promise<number> {
  return await new Promise((resolve, reject) => { fsOpen(path, 'r', (err, fd) => { if (err == null) resolve(fd); else reject(err) }) })
}

async function readFd (fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return await new Promise((resolve, reject) => { fsRead(fd, buf, offset, length, position, (err, n) => { if (err == null) resolve(n); else reject(err) }) })
}
