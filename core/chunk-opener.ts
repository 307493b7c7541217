/**
 * Decrypting a content's chunks, whatever its manifest's version: v1 and v2
 * chunks are sealed under the content key with the chunk index as nonce; v3
 * chunks each under their own key, which the manifest carries sealed under
 * the content key (core/chunk-keys.ts). Readers open a manifest's keys once
 * and then decrypt chunk by chunk.
 */
import { decryptChunk } from './chunk-crypto.ts'
import { decryptWithChunkKey, openChunkKeys } from './chunk-keys.ts'
import { MANIFEST_VERSION_KEYS, type Manifest } from './manifest.ts'

/** Decrypts and authenticates chunk `index`'s blob; throws DecryptError when it does not open. */
export type ChunkOpener = (index: number, blob: Uint8Array) => Uint8Array

export function chunkOpener (manifest: Pick<Manifest, 'v' | 'keys' | 'chunks'>, contentKey: Uint8Array): ChunkOpener {
  if (manifest.v !== MANIFEST_VERSION_KEYS) return (index, blob) => decryptChunk(contentKey, index, blob)
  const keys = openChunkKeys(contentKey, manifest.keys ?? '', manifest.chunks.length)
  return (index, blob) => decryptWithChunkKey(keys[index], blob)
}
