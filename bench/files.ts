/**
 * Test contents: incompressible bytes written in pieces (memory stays small
 * whatever the size), and a check that the disk can take them first.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto'
import { open, statfs } from 'node:fs/promises'
import { CapacityError } from '../core/errors.ts'
import { formatBytes } from '../core/units.ts'

const PIECE = 4 * 1024 * 1024

/**
 * Writes `size` pseudo-random bytes: an AES-CTR keystream under a random key,
 * which is as incompressible as random bytes and several times faster to make.
 */
export async function makeRandomFile (path: string, size: number): Promise<void> {
  const cipher = createCipheriv('aes-128-ctr', randomBytes(16), randomBytes(16))
  const zeros = Buffer.alloc(PIECE)
  const fh = await open(path, 'w')
  try {
    for (let done = 0; done < size;) {
      const n = Math.min(PIECE, size - done)
      const piece = cipher.update(n === PIECE ? zeros : zeros.subarray(0, n))
      await fh.write(piece, 0, piece.length, done)
      done += n
    }
  } finally {
    await fh.close()
  }
}

export async function freeDiskBytes (dir: string): Promise<number> {
  const s = await statfs(dir)
  return s.bavail * s.bsize
}

/** Fails early, with the numbers, when `dir`'s disk has less than `need` bytes free. */
export async function requireFreeDisk (dir: string, need: number, what: string): Promise<void> {
  const free = await freeDiskBytes(dir)
  if (free < need) throw new CapacityError(`${what} needs ${formatBytes(need)} of disk in ${dir}, only ${formatBytes(free)} free`)
}

/** SHA-256 (hex) of bytes [start, end) of a file, to check what a range request returned. */
export async function sliceHash (path: string, start: number, end: number): Promise<string> {
  const fh = await open(path, 'r')
  const hash = createHash('sha256')
  const buf = Buffer.alloc(Math.min(PIECE, Math.max(1, end - start)))
  try {
    for (let at = start; at < end;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - at), at)
      if (bytesRead === 0) break
      hash.update(buf.subarray(0, bytesRead))
      at += bytesRead
    }
    return hash.digest('hex')
  } finally {
    await fh.close()
  }
}
