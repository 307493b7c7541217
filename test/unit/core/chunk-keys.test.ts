import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { newContentKey, TAG_BYTES } from '../../../core/chunk-crypto.ts'
import { chunkKeyOf, chunkTags, encryptWithChunkKey, newLineageKey, openChunkKeys, plaintextHash, sealChunkKeys } from '../../../core/chunk-keys.ts'
import { chunkOpener } from '../../../core/chunk-opener.ts'
import { DecryptError, SignatureError } from '../../../core/errors.ts'
import { chunkCid } from '../../../core/ids.ts'
import { decodeManifest, sealMetadata, signManifest, verifyManifest } from '../../../core/manifest.ts'

const one = Buffer.from('the first chunk of a film, and then some more bytes')
const two = Buffer.from('another chunk entirely')

function blobOf (lineage: Uint8Array, plain: Uint8Array): Uint8Array {
  const [tag] = chunkTags(lineage, [plaintextHash(plain)])
  return encryptWithChunkKey(chunkKeyOf(lineage, tag), plain)
}

test('within a name, equal plaintext gives one blob; under another name, another', () => {
  const lineage = newLineageKey()
  const a = blobOf(lineage, one)
  assert.equal(Buffer.from(blobOf(lineage, Buffer.from(one))), Buffer.from(a))
  assert.is(a.length, one.length + TAG_BYTES)
  assert.not.equal(Buffer.from(blobOf(lineage, two)).subarray(0, 8), Buffer.from(a).subarray(0, 8))
  assert.not.equal(Buffer.from(blobOf(newLineageKey(), one)), Buffer.from(a))
})

test('a tag depends on the lineage key and reveals no plaintext hash', () => {
  const hash = plaintextHash(one)
  const lineage = newLineageKey()
  const [tag] = chunkTags(lineage, [hash])
  assert.match(tag, /^[0-9a-f]{64}$/)
  assert.is.not(tag, Buffer.from(hash).toString('hex'))
  assert.equal(chunkTags(lineage, [hash]), [tag])
  assert.is.not(chunkTags(newLineageKey(), [hash])[0], tag)
})

test('sealed chunk keys open only with their content key', () => {
  const keys = [newLineageKey(), newLineageKey(), newLineageKey()]
  const contentKey = newContentKey()
  const sealed = sealChunkKeys(contentKey, keys)
  assert.equal(openChunkKeys(contentKey, sealed, 3).map(k => Buffer.from(k)), keys.map(k => Buffer.from(k)))
  assert.throws(() => openChunkKeys(newContentKey(), sealed, 3), (e: unknown) => e instanceof DecryptError)
  assert.throws(() => openChunkKeys(contentKey, sealed, 2), /hold 3 keys/)
})

test('a version 3 manifest signs its sealed keys, and its chunks open with them', async () => {
  const pool = await generateKeyPair('Ed25519')
  const signer = peerIdFromPrivateKey(pool).toString()
  const lineage = newLineageKey()
  const contentKey = newContentKey()
  const tags = chunkTags(lineage, [plaintextHash(one), plaintextHash(two)])
  const keys = tags.map(t => chunkKeyOf(lineage, t))
  const blobs = [encryptWithChunkKey(keys[0], one), encryptWithChunkKey(keys[1], two)]
  const signed = await signManifest({
    size: one.length + two.length,
    chunkSize: 64,
    chunks: blobs.map(b => chunkCid(b).toString()),
    offsets: [0, one.length],
    keys: sealChunkKeys(contentKey, keys),
    createdAt: '2026-11-30T00:00:00.000Z',
    publisher: 'alice',
    meta: sealMetadata(contentKey, { name: 'film.mp4', type: 'video/mp4' })
  }, pool, signer)
  assert.is(signed.manifest.v, 3)
  assert.is(signed.manifest.cipher, 'aes-256-gcm/derived-keys')
  const decoded = decodeManifest(signed.bytes)
  await verifyManifest(decoded, [signer])
  const open = chunkOpener(decoded, contentKey)
  assert.equal(Buffer.from(open(1, blobs[1])), two)
  assert.throws(() => open(0, blobs[1]), (e: unknown) => e instanceof DecryptError)
  // The keys opened for this manifest are kept with it, and never handed to another content key.
  assert.equal(Buffer.from(chunkOpener(decoded, contentKey)(0, blobs[0])), one)
  assert.throws(() => chunkOpener(decoded, newContentKey()), (e: unknown) => e instanceof DecryptError)
  // Keys swapped for others are a different manifest: the signature no longer holds.
  try {
    await verifyManifest({ ...decoded, keys: sealChunkKeys(contentKey, [keys[1], keys[0]]) })
    assert.unreachable('swapped keys verified')
  } catch (err) {
    assert.instance(err, SignatureError)
  }
})

test('a v3 manifest without keys, or a v2 manifest with them, is refused', async () => {
  const pool = await generateKeyPair('Ed25519')
  const signed = await signManifest({
    size: 10, chunkSize: 10, chunks: [chunkCid(new Uint8Array([1])).toString()], offsets: [0], keys: sealChunkKeys(newContentKey(), [newLineageKey()]),
    createdAt: 'x', publisher: 'p', meta: 'm'
  }, pool, peerIdFromPrivateKey(pool).toString())
  const json = JSON.parse(new TextDecoder().decode(signed.bytes))
  const bytes = (o: object): Uint8Array => new TextEncoder().encode(JSON.stringify(o))
  assert.throws(() => decodeManifest(bytes({ ...json, keys: undefined })), /"keys"/)
  assert.throws(() => decodeManifest(bytes({ ...json, v: 2 })), /"cipher"/)
  assert.throws(() => decodeManifest(bytes({ ...json, v: 2, cipher: 'aes-256-gcm/index-nonce' })), /"keys"/)
})

test.run()
