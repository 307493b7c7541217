/**
 * Cuts a file into chunks on the publisher's machine and hashes each one,
 * reading it once as a stream: the plan of a differential upload
 * (docs/PROTOCOLS.md, "Upload sessions"). Only the chunk being cut is in
 * memory; the bytes are read again later, by offset, for the chunks the
 * manager is missing.
 */
import { createReadStream } from 'node:fs'
import { CDC_DEFAULTS } from '../core/cdc-chunker.ts'
import { plaintextHash } from '../core/chunk-keys.ts'
import { MANAGER_DEFAULTS } from '../manager/defaults.ts'
import { chunksOf, type Chunking, type ChunkingMode } from '../core/chunker.ts'

/** `--chunking fixed` with a name: the manager's fixed size, the last one shorter. */
export const FIXED_CHUNK_BYTES = MANAGER_DEFAULTS.chunkSize

export interface FileChunk {
  index: number
  /** where the chunk starts in the file */
  offset: number
  size: number
  /** sha256 of the chunk's plaintext, 64 lowercase hex */
  hash: string
}

export function localChunking (mode: ChunkingMode = 'cdc'): Chunking {
  return mode === 'fixed' ? { kind: 'fixed', chunkSize: FIXED_CHUNK_BYTES } : { kind: 'cdc', sizes: CDC_DEFAULTS }
}

export interface FileChunksOptions {
  mode?: ChunkingMode
  /** told the bytes hashed so far, once per chunk */
  onProgress?: (bytes: number) => void
  signal?: AbortSignal
}

/** The chunks of `path` in file order, tiling it; none for an empty file. */
export async function * fileChunks (path: string, opts: FileChunksOptions = {}): AsyncGenerator<FileChunk> {
  const stream = createReadStream(path, { highWaterMark: 1024 * 1024, ...(opts.signal != null ? { signal: opts.signal } : {}) })
  let offset = 0
  for await (const chunk of chunksOf(stream, localChunking(opts.mode))) {
    const size = chunk.bytes.length
    yield { index: chunk.index, offset, size, hash: Buffer.from(plaintextHash(chunk.bytes)).toString('hex') }
    offset += size
    opts.onProgress?.(offset)
  }
}

/** Every chunk of `path`, collected (a few dozen bytes each, never the bytes themselves). */
export async function planFile (path: string, opts: FileChunksOptions = {}): Promise<FileChunk[]> {
  const chunks: FileChunk[] = []
  for await (const chunk of fileChunks(path, opts)) chunks.push(chunk)
  return chunks
}
