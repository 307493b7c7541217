/**
 * Keys for deduplication within a name. Every name has a random lineage key,
 * kept sealed by the manager. A chunk's tag is an HMAC of its plaintext hash
 * under a key drawn from the lineage key, and the chunk's key is drawn from
 * the lineage key and that tag (HKDF-SHA256). Equal plaintext chunks of one
 * name therefore get one key and, encrypted under a fixed nonce, one blob;
 * the same bytes under another name get another key and another blob, so
 * nobody learns whether anyone else holds them.
 *
 * A fixed nonce is safe here because a derived key only ever encrypts one
 * plaintext: the one whose hash it was derived from.
 *
 * The catalog keeps tags, never plaintext hashes, so a copy of the database
 * (without the master key that seals lineage keys) says nothing about what
 * a chunk contains.
 */
import { createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { BadInputError } from './errors.ts'
import { KEY_BYTES, openWithNonce, sealWithNonce } from './chunk-crypto.ts'

export const HASH_BYTES = 32
const TAG_INFO = 'cdn chunk tag v1'
const KEY_INFO = 'cdn chunk key v1'
/** Derived keys encrypt one plaintext each: one nonce serves them all. */
const DERIVED_NONCE = Buffer.alloc(12)
/** The chunk keys of a manifest are sealed under its content key with a nonce no chunk index or metadata uses. */
const KEYS_NONCE = Buffer.from([0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])

export function newLineageKey (): Uint8Array {
  return randomBytes(KEY_BYTES)
}

/** The hash a publisher computes over a chunk's plaintext, and sends to ask whether the name holds it. */
export function plaintextHash (plaintext: Uint8Array): Uint8Array {
  return createHash('sha256').update(plaintext).digest()
}

function checkLineage (lineage: Uint8Array): void {
  if (lineage.length !== KEY_BYTES) throw new BadInputError(`a lineage key is ${KEY_BYTES} bytes`)
}

function hkdf (lineage: Uint8Array, info: string): Buffer {
  checkLineage(lineage)
  return Buffer.from(hkdfSync('sha256', lineage, Buffer.alloc(0), info, KEY_BYTES))
}

/**
 * Turns plaintext hashes into tags (hex). Takes many at once: the tag key is
 * drawn once per call, and a publish brings thousands of hashes.
 */
export function chunkTags (lineage: Uint8Array, hashes: readonly Uint8Array[]): string[] {
  const tagKey = hkdf(lineage, TAG_INFO)
  return hashes.map(hash => {
    if (hash.length !== HASH_BYTES) throw new BadInputError(`a chunk hash is ${HASH_BYTES} bytes`)
    return createHmac('sha256', tagKey).update(hash).digest('hex')
  })
}

/** The key of the chunk whose tag is `tag`. */
export function chunkKeyOf (lineage: Uint8Array, tag: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(tag)) throw new BadInputError('a chunk tag is 64 hex characters')
  return hkdf(lineage, `${KEY_INFO}\n${tag}`)
}

export function encryptWithChunkKey (chunkKey: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return sealWithNonce(chunkKey, DERIVED_NONCE, plaintext)
}

export function decryptWithChunkKey (chunkKey: Uint8Array, blob: Uint8Array): Uint8Array {
  return openWithNonce(chunkKey, DERIVED_NONCE, blob)
}

/** The chunk keys of one content, sealed under its content key (base64): a manifest carries them without giving them away. */
export function sealChunkKeys (contentKey: Uint8Array, keys: readonly Uint8Array[]): string {
  const all = Buffer.alloc(keys.length * KEY_BYTES)
  keys.forEach((k, i) => {
    if (k.length !== KEY_BYTES) throw new BadInputError(`chunk key ${i} is not ${KEY_BYTES} bytes`)
    all.set(k, i * KEY_BYTES)
  })
  return Buffer.from(sealWithNonce(contentKey, KEYS_NONCE, all)).toString('base64')
}

/** Opens what sealChunkKeys made; throws DecryptError on a wrong content key or tampering. */
export function openChunkKeys (contentKey: Uint8Array, sealed: string, count: number): Uint8Array[] {
  const all = openWithNonce(contentKey, KEYS_NONCE, Buffer.from(sealed, 'base64'))
  if (all.length !== count * KEY_BYTES) throw new BadInputError(`sealed chunk keys hold ${all.length / KEY_BYTES} keys, not ${count}`)
  return Array.from({ length: count }, (_, i) => all.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES))
}
