import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { decodeKey, decryptChunk, encodeKey, encryptChunk, newContentKey, TAG_BYTES } from '../../../core/chunk-crypto.ts'
import { DecryptError } from '../../../core/errors.ts'

const plain = new Uint8Array(1000).map((_, i) => i % 251)

test('a chunk decrypts back to its plaintext', () => {
  const key = newContentKey()
  const blob = encryptChunk(key, 7, plain)
  assert.is(blob.length, plain.length + TAG_BYTES)
  assert.not.equal(Buffer.from(blob.subarray(0, plain.length)), Buffer.from(plain))
  assert.equal(Buffer.from(decryptChunk(key, 7, blob)), Buffer.from(plain))
})

test('one flipped bit, another index or another key is refused', () => {
  const key = newContentKey()
  const blob = encryptChunk(key, 3, plain)
  const flipped = Uint8Array.from(blob)
  flipped[10] ^= 1
  assert.throws(() => decryptChunk(key, 3, flipped), (e: unknown) => e instanceof DecryptError)
  assert.throws(() => decryptChunk(key, 4, blob), (e: unknown) => e instanceof DecryptError)
  assert.throws(() => decryptChunk(newContentKey(), 3, blob), (e: unknown) => e instanceof DecryptError)
})

test('the same plaintext at two indexes gives two ciphertexts', () => {
  const key = newContentKey()
  assert.not.equal(Buffer.from(encryptChunk(key, 0, plain)), Buffer.from(encryptChunk(key, 1, plain)))
})

test('an empty chunk still carries a tag', () => {
  const key = newContentKey()
  const blob = encryptChunk(key, 0, new Uint8Array(0))
  assert.is(blob.length, TAG_BYTES)
  assert.is(decryptChunk(key, 0, blob).length, 0)
})

test('keys round-trip through their text form and bad text is refused', () => {
  const key = newContentKey()
  assert.equal(Buffer.from(decodeKey(encodeKey(key))), Buffer.from(key))
  assert.throws(() => decodeKey('short'))
  assert.throws(() => decodeKey(42))
})

test.run()
