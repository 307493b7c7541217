/**
 * Content-defined chunking in the FastCDC style: a gear rolling hash over the
 * bytes, a cut where its top bits are zero. Boundaries depend on the last 32
 * bytes only, so an insertion moves the boundaries next to it and the rest
 * of the file cuts exactly as before: that is what lets an edited file share
 * most of its chunks with the previous one.
 *
 * Normalized chunking: between `min` and `avg` a stricter mask (more bits)
 * makes a cut unlikely, past `avg` a looser one makes it likely, so chunk
 * sizes gather around `avg` instead of spreading geometrically. Nothing is
 * hashed before `min` (a cut there is not allowed anyway), and `max` is cut
 * unconditionally.
 */
import { createHash } from 'node:crypto'
import { BadInputError } from './errors.ts'

export interface CdcSizes {
  /** no chunk is shorter, except the last */
  min: number
  /** the size chunks gather around; a power of two (it sets the masks) */
  avg: number
  /** no chunk is longer: a cut is forced here */
  max: number
}

/**
 * Chosen by bench/cdc-sizes.ts (table in the README). Every 1 MiB-average set
 * shares over 99% of an edited 256 MiB file's chunks and sends about 2 MiB
 * for a 4 KiB insertion; 512 KiB / 1 MiB / 2 MiB was the fastest of them
 * (the first half of each chunk is never hashed), with half the largest
 * chunk to buffer. Smaller averages send less per edit
 * but make four times the chunks (manifest, catalog rows, requests), and
 * chunks near 1 MiB are what the fetch scheduler is tuned for.
 */
export const CDC_DEFAULTS: Readonly<CdcSizes> = Object.freeze({ min: 512 * 1024, avg: 1024 * 1024, max: 2 * 1024 * 1024 })

/** Bits the two masks add to and take from log2(avg) (FastCDC's normalization level). */
const NORMALIZATION = 2
const MIN_AVG = 64
const MAX_AVG = 2 ** 26

/**
 * 256 pseudo-random 32-bit words, fixed forever: changing them moves every
 * boundary, and then no chunk of a new upload matches an older one. Derived
 * from a label rather than written out, so anyone can recompute them.
 */
const GEAR: Int32Array = (() => {
  const words = createHash('shake256', { outputLength: 1024 }).update('cdn gear table v1').digest()
  const table = new Int32Array(256)
  for (let i = 0; i < 256; i++) table[i] = words.readInt32BE(i * 4)
  return table
})()

/** A mask of the hash's top `bits` bits: those depend on the most bytes (bit k sees the last k + 1). */
function topBits (bits: number): number {
  return (~0 << (32 - bits)) | 0
}

export function checkCdcSizes (s: CdcSizes): CdcSizes {
  const { min, avg, max } = s
  const ok = [min, avg, max].every(v => Number.isSafeInteger(v) && v > 0)
  if (!ok || avg < MIN_AVG || avg > MAX_AVG || (avg & (avg - 1)) !== 0) {
    throw new BadInputError(`content-defined chunking: avg must be a power of two from ${MIN_AVG} to ${MAX_AVG}, got ${avg}`)
  }
  if (!(min >= 1 && min < avg && avg < max)) throw new BadInputError(`content-defined chunking needs min < avg < max, got ${min} / ${avg} / ${max}`)
  return { min, avg, max }
}

/**
 * Finds cut points in a stream fed piece by piece. It keeps no bytes, only
 * the length of the chunk so far and the rolling hash, so the caller decides
 * what to buffer.
 */
export class CdcCutter {
  readonly sizes: CdcSizes
  private readonly strict: number
  private readonly loose: number
  /** bytes of the current chunk seen so far */
  private length = 0
  private hash = 0

  constructor (sizes: CdcSizes = CDC_DEFAULTS) {
    this.sizes = checkCdcSizes(sizes)
    const bits = Math.log2(this.sizes.avg)
    this.strict = topBits(Math.min(32, bits + NORMALIZATION))
    this.loose = topBits(Math.max(1, bits - NORMALIZATION))
  }

  /**
   * Reads `bytes` from `from` on. Returns the index just past the cut when
   * the current chunk ends inside them (the next chunk then starts there and
   * the cutter is ready for it), or -1 when every byte belongs to the chunk.
   */
  next (bytes: Uint8Array, from = 0): number {
    const { min, avg, max } = this.sizes
    const end = bytes.length
    let i = from
    while (i < end) {
      const length = this.length
      if (length < min) {
        const n = Math.min(min - length, end - i)
        this.length += n
        i += n
        continue
      }
      const limit = length < avg ? avg : max
      const stop = Math.min(end, i + limit - length)
      const cut = this.scan(bytes, i, stop, length < avg ? this.strict : this.loose)
      if (cut >= 0) return this.restart(cut)
      this.length += stop - i
      i = stop
      if (this.length === max) return this.restart(i)
    }
    return -1
  }

  /** Forgets the chunk in progress (the stream ended, or a new one begins). */
  reset (): void {
    this.length = 0
    this.hash = 0
  }

  private scan (bytes: Uint8Array, from: number, to: number, mask: number): number {
    let h = this.hash
    for (let i = from; i < to; i++) {
      h = ((h << 1) + GEAR[bytes[i]]) | 0
      if ((h & mask) === 0) {
        this.hash = h
        return i + 1
      }
    }
    this.hash = h
    return -1
  }

  private restart (cut: number): number {
    this.reset()
    return cut
  }
}

export interface CdcChunk {
  index: number
  /** where the chunk starts in the stream */
  offset: number
  /**
   * The chunk's bytes: a view of the chunker's one buffer, valid until the
   * consumer asks for the next chunk, so use it (encrypt, hash) or copy it first.
   */
  bytes: Uint8Array
}

/**
 * Cuts a byte stream into content-defined chunks, holding at most one
 * max-size chunk whatever the stream's size; returns the stream's length.
 * The same bytes give the same chunks however they are split into pieces.
 */
export async function * cdcChunks (source: AsyncIterable<Uint8Array>, sizes: CdcSizes = CDC_DEFAULTS): AsyncGenerator<CdcChunk, number> {
  const cutter = new CdcCutter(sizes)
  const buffer = Buffer.allocUnsafe(cutter.sizes.max)
  let filled = 0
  let index = 0
  let offset = 0
  let total = 0
  for await (const piece of source) {
    total += piece.length
    let from = 0
    while (from < piece.length) {
      const cut = cutter.next(piece, from)
      const to = cut < 0 ? piece.length : cut
      buffer.set(piece.subarray(from, to), filled)
      filled += to - from
      from = to
      if (cut >= 0) {
        yield { index: index++, offset, bytes: buffer.subarray(0, filled) }
        offset += filled
        filled = 0
      }
    }
  }
  if (filled > 0) yield { index: index++, offset, bytes: buffer.subarray(0, filled) }
  return total
}
