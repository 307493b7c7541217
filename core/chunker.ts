/**
 * Slices a byte stream into fixed-size chunks with one chunk buffer in
 * memory, whatever the stream's size: the body of a 64 GiB upload is never
 * held, only the chunk being filled.
 */
import { cdcChunks, type CdcSizes } from './cdc-chunker.ts'
import { BadInputError, TooLargeError } from './errors.ts'

export interface ChunkerOptions {
  /** bytes past which the stream is refused with TooLargeError (default: no limit) */
  maxBytes?: number
}

export interface Chunk {
  index: number
  /** where the chunk starts in the stream */
  offset?: number
  /**
   * The chunk's bytes. A view of the chunker's one buffer: valid until the
   * consumer asks for the next chunk, so use it (encrypt, hash) or copy it first.
   */
  bytes: Uint8Array
}

/**
 * Yields chunks of exactly `chunkSize` bytes, the last one shorter (and none
 * at all for an empty stream). The buffer is reused from chunk to chunk.
 */
export async function * chunkStream (source: AsyncIterable<Uint8Array>, chunkSize: number, options: ChunkerOptions = {}): AsyncGenerator<Chunk, number> {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new BadInputError(`chunk size must be a positive integer, got ${chunkSize}`)
  const maxBytes = options.maxBytes ?? Infinity
  const buffer = Buffer.allocUnsafe(chunkSize)
  let filled = 0
  let index = 0
  let total = 0
  for await (const piece of source) {
    total += piece.length
    if (total > maxBytes) throw new TooLargeError(`upload is over the ${maxBytes}-byte limit`)
    let offset = 0
    while (offset < piece.length) {
      const n = Math.min(chunkSize - filled, piece.length - offset)
      buffer.set(piece.subarray(offset, offset + n), filled)
      filled += n
      offset += n
      if (filled === chunkSize) {
        yield { index: index++, bytes: buffer }
        filled = 0
      }
    }
  }
  if (filled > 0) yield { index: index++, bytes: buffer.subarray(0, filled) }
  return total
}

/** How an upload is cut: at fixed offsets, or where its content says (core/cdc-chunker.ts). */
export type Chunking = { kind: 'fixed', chunkSize: number } | { kind: 'cdc', sizes: CdcSizes }

export const CHUNKING_MODES = ['fixed', 'cdc'] as const
export type ChunkingMode = typeof CHUNKING_MODES[number]

export function parseChunkingMode (text: string, where: string): ChunkingMode {
  if (!(CHUNKING_MODES as readonly string[]).includes(text)) throw new BadInputError(`${where} must be one of ${CHUNKING_MODES.join(', ')}, got "${text.slice(0, 40)}"`)
  return text as ChunkingMode
}

/** Passes the stream through, refusing it once it is over `maxBytes`. */
async function * capped (source: AsyncIterable<Uint8Array>, maxBytes: number): AsyncGenerator<Uint8Array> {
  let total = 0
  for await (const piece of source) {
    total += piece.length
    if (total > maxBytes) throw new TooLargeError(`upload is over the ${maxBytes}-byte limit`)
    yield piece
  }
}

/** Chunks a stream the way `chunking` says, with one (largest) chunk in memory; returns the stream's length. */
export function chunksOf (source: AsyncIterable<Uint8Array>, chunking: Chunking, options: ChunkerOptions = {}): AsyncGenerator<Chunk, number> {
  if (chunking.kind === 'fixed') return chunkStream(source, chunking.chunkSize, options)
  return cdcChunks(options.maxBytes != null ? capped(source, options.maxBytes) : source, chunking.sizes)
}
