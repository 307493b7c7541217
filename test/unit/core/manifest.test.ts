import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { newContentKey } from '../../../core/chunk-crypto.ts'
import { SignatureError, BadInputError } from '../../../core/errors.ts'
import { chunkCid, manifestCid, parseBlobId, parseContentId, matchesCid } from '../../../core/ids.ts'
import { decodeManifest, openMetadata, sealMetadata, signManifest, verifyManifest, chunkLength } from '../../../core/manifest.ts'

async function signer () {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() }
}

async function sample (key: Awaited<ReturnType<typeof signer>>, contentKey = newContentKey()) {
  const chunks = [chunkCid(new Uint8Array([1])).toString(), chunkCid(new Uint8Array([2])).toString()]
  return signManifest({
    size: 1500,
    chunkSize: 1024,
    chunks,
    createdAt: '2026-11-22T00:00:00.000Z',
    publisher: 'alice',
    meta: sealMetadata(contentKey, { name: 'movie.webm', type: 'video/webm' })
  }, key.key, key.id)
}

test('a signed manifest decodes, verifies and names its content', async () => {
  const s = await signer()
  const contentKey = newContentKey()
  const signed = await sample(s, contentKey)
  const decoded = decodeManifest(signed.bytes)
  await verifyManifest(decoded, [s.id])
  assert.is(manifestCid(signed.bytes).toString(), signed.id.toString())
  assert.is(parseContentId(signed.id.toString()).toString(), signed.id.toString())
  assert.equal(openMetadata(contentKey, decoded), { name: 'movie.webm', type: 'video/webm' })
  assert.is(chunkLength(decoded, 1), 476)
})

test('a changed field or a foreign signer fails verification', async () => {
  const s = await signer()
  const signed = await sample(s)
  const tampered = { ...decodeManifest(signed.bytes), size: 1600 }
  try {
    await verifyManifest(tampered)
    assert.unreachable('tampered manifest verified')
  } catch (err) {
    assert.instance(err, SignatureError)
  }
  const other = await signer()
  try {
    await verifyManifest(decodeManifest(signed.bytes), [other.id])
    assert.unreachable('untrusted signer accepted')
  } catch (err) {
    assert.instance(err, SignatureError)
  }
})

test('malformed manifests and ids are refused with BadInputError', () => {
  assert.throws(() => decodeManifest(new TextEncoder().encode('{"v":1')), (e: unknown) => e instanceof BadInputError)
  assert.throws(() => decodeManifest(new TextEncoder().encode('{"v":1,"size":10,"chunkSize":4,"chunks":[]}')), (e: unknown) => e instanceof BadInputError)
  assert.throws(() => parseBlobId('not-a-cid'), (e: unknown) => e instanceof BadInputError)
  assert.throws(() => parseBlobId('QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG'), (e: unknown) => e instanceof BadInputError)
  const chunk = chunkCid(new Uint8Array([9])).toString()
  assert.throws(() => parseContentId(chunk), (e: unknown) => e instanceof BadInputError)
})

test('a chunk id is CIDv1 raw sha2-256 and matches only its bytes', () => {
  const bytes = new Uint8Array([1, 2, 3])
  const cid = chunkCid(bytes)
  assert.is(cid.version, 1)
  assert.is(cid.code, 0x55)
  assert.is(cid.multihash.code, 0x12)
  assert.ok(cid.toString().startsWith('bafkrei'))
  assert.ok(matchesCid(cid, bytes))
  assert.not.ok(matchesCid(cid, new Uint8Array([1, 2, 4])))
})

test.run()
