/**
 * Decrypting a content's chunks, whatever its manifest's version: v1 and v2
 * chunks are sealed under the content key with the chunk index as nonce; v3
 * chunks each under their own key, which the manifest carries sealed under
 * the content key (core/chunk-keys.ts). A manifest's keys are opened once
 * and kept with the manifest object: a proxy makes a reader per request
 * (each Range of a video), and each would otherwise open them all again.
 */
import { decryptChunk } from './chunk-crypto.ts'
import { decryptWithChunkKey, openChunkKeys } from './chunk-keys.ts'
import { MANIFEST_VERSION_KEYS, type Manifest } from './manifest.ts'

/** Decrypts and authenticates chunk `index`'s blob; throws DecryptError when it does not open. */
export type ChunkOpener = (index: number, blob: Uint8Array) => Uint8Array

type KeyedManifest = Pick<Manifest, 'v' | 'keys' | 'chunks'>

/** Opened chunk keys per manifest object, with the content key that opened them. */
const opened = new WeakMap<KeyedManifest, { contentKey: Uint8Array, keys: Uint8Array[] }>()

export function chunkOpener (manifest: KeyedManifest, contentKey: Uint8Array): ChunkOpener {
  if (manifest.v !== MANIFEST_VERSION_KEYS) return (index, blob) => decryptChunk(contentKey, index, blob)
  let entry = opened.get(manifest)
  if (entry == null || !Buffer.from(entry.contentKey).equals(contentKey)) {
    entry = { contentKey, keys: openChunkKeys(contentKey, manifest.keys ?? '', manifest.chunks.length) }
    opened.set(manifest, entry)
  }
  const { keys } = entry
  return (index, blob) => decryptWithChunkKey(keys[index], blob)
}
