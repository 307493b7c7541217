/**
 * The node data plane's wire, as its clients (proxies, the manager) and the
 * node agree on it (docs/PROTOCOLS.md): have-bitmaps, and the header that
 * marks the pool's own traffic.
 */
import { ProtocolError } from './errors.ts'

/** Sent by the pool's own fetches (copies, checks): the node counts them apart from viewers' demand. */
export const COPY_HEADER = 'x-cdn-copy'

/**
 * The have-bitmap of PROTOCOLS.md: bit i (byte i>>3, mask 0x80 >> (i & 7)) is
 * set when a node holds chunk i of a content.
 */
export function hasChunk (bitmap: Uint8Array, index: number): boolean {
  const byte = bitmap[index >> 3]
  return byte !== undefined && (byte & (0x80 >> (index & 7))) !== 0
}

export function bitmapOf (indexes: Iterable<number>, chunks: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(chunks / 8))
  for (const i of indexes) {
    if (i >= 0 && i < chunks) out[i >> 3] |= 0x80 >> (i & 7)
  }
  return out
}

export function fullBitmap (chunks: number): Uint8Array {
  return bitmapOf(Array.from({ length: chunks }, (_, i) => i), chunks)
}

/** Validates a node's `/have/<id>` answer against the content we resolved; a mismatch means the node is confused or lying. */
export function parseHave (body: unknown, contentId: string, chunks: number): Uint8Array {
  const b = body as { content?: unknown, chunks?: unknown, bitmap?: unknown } | null
  if (b == null || typeof b !== 'object') throw new ProtocolError('have answer is not an object')
  if (b.content !== contentId) throw new ProtocolError(`have answer is for ${String(b.content)}, not ${contentId}`)
  if (b.chunks !== chunks) throw new ProtocolError(`have answer counts ${String(b.chunks)} chunks, the manifest ${chunks}`)
  if (typeof b.bitmap !== 'string') throw new ProtocolError('have answer has no bitmap')
  const bitmap = Buffer.from(b.bitmap, 'base64')
  if (bitmap.length !== Math.ceil(chunks / 8)) throw new ProtocolError(`have bitmap is ${bitmap.length} bytes, expected ${Math.ceil(chunks / 8)}`)
  return new Uint8Array(bitmap.buffer, bitmap.byteOffset, bitmap.length)
}
