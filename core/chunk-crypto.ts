import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { BadInputError, DecryptError } from './errors.ts'

export const KEY_BYTES = 32
export const TAG_BYTES = 16
const NONCE_BYTES = 12
/** Metadata (name, media type) is sealed under a nonce no chunk index can produce. */
const METADATA_NONCE_MARK = 0xff

export function newContentKey (): Uint8Array {
  return randomBytes(KEY_BYTES)
}

/**
 * Each content has its own random key, so a nonce derived from the chunk index
 * is never reused under one key. The high 4 bytes stay zero for chunks.
 */
function chunkNonce (index: number): Buffer {
  if (!Number.isSafeInteger(index) || index < 0) throw new BadInputError(`invalid chunk index ${index}`)
  const nonce = Buffer.alloc(NONCE_BYTES)
  nonce.writeBigUInt64BE(BigInt(index), 4)
  return nonce
}

function metadataNonce (): Buffer {
  const nonce = Buffer.alloc(NONCE_BYTES)
  nonce[0] = METADATA_NONCE_MARK
  return nonce
}

function checkKey (key: Uint8Array): void {
  if (key.length !== KEY_BYTES) throw new BadInputError(`content key must be ${KEY_BYTES} bytes`)
}

/** AES-256-GCM under a nonce the caller guarantees is never reused with this key for other bytes. */
export function sealWithNonce (key: Uint8Array, nonce: Buffer, plaintext: Uint8Array): Uint8Array {
  checkKey(key)
  const cipher = createCipheriv('aes-256-gcm', key, nonce)
  const out = Buffer.allocUnsafe(plaintext.length + TAG_BYTES)
  const n = cipher.update(plaintext).copy(out, 0)
  cipher.final()
  cipher.getAuthTag().copy(out, n)
  return out
}

export function openWithNonce (key: Uint8Array, nonce: Buffer, blob: Uint8Array): Uint8Array {
  checkKey(key)
  if (blob.length < TAG_BYTES) throw new DecryptError('blob is shorter than its authentication tag')
  const decipher = createDecipheriv('aes-256-gcm', key, nonce)
  decipher.setAuthTag(blob.subarray(blob.length - TAG_BYTES))
  const body = decipher.update(blob.subarray(0, blob.length - TAG_BYTES))
  try {
    decipher.final()
  } catch (err) {
    throw new DecryptError(undefined, { cause: err })
  }
  return body
}

/** Encrypts chunk `index` of a content: ciphertext followed by the 16-byte GCM tag. */
export function encryptChunk (key: Uint8Array, index: number, plaintext: Uint8Array): Uint8Array {
  return sealWithNonce(key, chunkNonce(index), plaintext)
}

/** Decrypts and authenticates chunk `index`; throws DecryptError on a wrong key, index or tampered blob. */
export function decryptChunk (key: Uint8Array, index: number, blob: Uint8Array): Uint8Array {
  return openWithNonce(key, chunkNonce(index), blob)
}

export function encryptMetadata (key: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return sealWithNonce(key, metadataNonce(), plaintext)
}

export function decryptMetadata (key: Uint8Array, blob: Uint8Array): Uint8Array {
  return openWithNonce(key, metadataNonce(), blob)
}

/** Keys travel in URLs and JSON as base64url. */
export function encodeKey (key: Uint8Array): string {
  return Buffer.from(key).toString('base64url')
}

export function decodeKey (text: unknown): Uint8Array {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(text)) {
    throw new BadInputError('invalid content key: expected 43 base64url characters')
  }
  return Buffer.from(text, 'base64url')
}
