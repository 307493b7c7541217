import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair, generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { newContentKey } from '../../../core/chunk-crypto.ts'
import { SignatureError, BadInputError } from '../../../core/errors.ts'
import { chunkCid, manifestCid, parseBlobId, parseContentId, matchesCid } from '../../../core/ids.ts'
import { decodeManifest, openMetadata, sealMetadata, signManifest, verifyManifest, chunkLength, chunkStart, chunkAt, type ManifestBody } from '../../../core/manifest.ts'

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

/** A fixed key and body: Ed25519 signatures are deterministic, so the bytes and the id are too. */
async function fixedSigner () {
  const key = await generateKeyPairFromSeed('Ed25519', new Uint8Array(32).fill(7))
  return { key, id: peerIdFromPrivateKey(key).toString() }
}
const THREE = [1, 2, 3].map(i => chunkCid(new Uint8Array([i])).toString())
const FIXED_BODY = { size: 2500, chunkSize: 1024, chunks: THREE, createdAt: '2026-11-22T00:00:00.000Z', publisher: 'alice', meta: 'bWV0YQ==' }

test('a fixed-size manifest is still version 1, byte for byte, with or without offsets', async () => {
  const s = await fixedSigner()
  // This id was computed by the manifest code before version 2 existed.
  const before = 'bagaaierawycimjigi2r2byfndqxhvmx4nnrnrwy2oawkc6dt75xbpmhgieiq'
  const plain = await signManifest(FIXED_BODY, s.key, s.id)
  assert.is(plain.id.toString(), before)
  assert.is(plain.manifest.v, 1)
  assert.not.ok('offsets' in JSON.parse(new TextDecoder().decode(plain.bytes)))
  // Content-defined chunks that happen to fall on fixed boundaries say nothing v1 does not.
  const sameLayout = await signManifest({ ...FIXED_BODY, offsets: [0, 1024, 2048] }, s.key, s.id)
  assert.equal(Buffer.from(sameLayout.bytes), Buffer.from(plain.bytes))
})

test('variable chunks make a version 2 manifest whose offsets are signed', async () => {
  const s = await fixedSigner()
  const signed = await signManifest({ ...FIXED_BODY, chunkSize: 1500, offsets: [0, 700, 2000] }, s.key, s.id)
  assert.is(signed.manifest.v, 2)
  const decoded = decodeManifest(signed.bytes)
  await verifyManifest(decoded, [s.id])
  assert.equal(decoded.offsets, [0, 700, 2000])
  assert.equal([0, 1, 2].map(i => chunkLength(decoded, i)), [700, 1300, 500])
  // Moving a boundary is a different manifest: the signature no longer holds.
  try {
    await verifyManifest({ ...decoded, offsets: [0, 701, 2000] })
    assert.unreachable('moved offset verified')
  } catch (err) {
    assert.instance(err, SignatureError)
  }
})

function encoded (fields: Partial<ManifestBody> & Record<string, unknown>): Uint8Array {
  const base = { v: 2, size: 2500, chunkSize: 1500, chunks: THREE, offsets: [0, 700, 2000], createdAt: 'x', publisher: 'p', cipher: 'aes-256-gcm/index-nonce', meta: 'm', signer: 's', sig: 'g' }
  return new TextEncoder().encode(JSON.stringify({ ...base, ...fields }))
}

test('decodeManifest refuses offsets that do not tile the content', () => {
  assert.is(decodeManifest(encoded({})).v, 2)
  const bad: Array<Record<string, unknown>> = [
    { offsets: undefined }, // v2 without offsets
    { offsets: [0, 700] }, // one short of the chunks
    { offsets: [1, 700, 2000] }, // not from 0
    { offsets: [0, 2000, 700] }, // not increasing
    { offsets: [0, 700, 700] }, // an empty chunk
    { offsets: [0, 700, 2500] }, // a chunk past the end
    { offsets: [0, 1600, 2000] }, // a chunk over chunkSize
    { offsets: [0, 700, 900] }, // the last chunk over chunkSize
    { offsets: [0, '700', 2000] },
    { offsets: [0, 700.5, 2000] },
    { v: 1, size: 2500, chunkSize: 1024 }, // v1 with offsets
    { v: 3 }
  ]
  for (const fields of bad) {
    assert.throws(() => decodeManifest(encoded(fields)), (e: unknown) => e instanceof BadInputError, JSON.stringify(fields))
  }
})

test('chunkStart and chunkAt map bytes to chunks in both versions', () => {
  const v1 = { size: 2500, chunkSize: 1024 }
  assert.equal([0, 1, 2, 3].map(i => chunkStart(v1, i)), [0, 1024, 2048, 2500])
  assert.equal([0, 1023, 1024, 2047, 2048, 2499].map(b => chunkAt(v1, b)), [0, 0, 1, 1, 2, 2])
  const v2 = { size: 2500, chunkSize: 1500, offsets: [0, 700, 2000] }
  assert.equal([0, 1, 2, 3].map(i => chunkStart(v2, i)), [0, 700, 2000, 2500])
  assert.equal([0, 699, 700, 1999, 2000, 2499].map(b => chunkAt(v2, b)), [0, 0, 1, 1, 2, 2])
  // Against a linear scan, on many uneven chunks.
  const offsets = [0]
  for (let i = 1; i < 500; i++) offsets.push(offsets[i - 1] + 1 + ((i * 7919) % 97))
  const many = { size: offsets[offsets.length - 1] + 10, chunkSize: 100, offsets }
  for (let b = 0; b < many.size; b++) {
    const linear = offsets.findLastIndex(o => o <= b)
    if (chunkAt(many, b) !== linear) assert.unreachable(`byte ${b}: ${chunkAt(many, b)} != ${linear}`)
  }
  for (const b of [-1, 2500, 0.5]) assert.throws(() => chunkAt(v2, b), (e: unknown) => e instanceof BadInputError)
  assert.throws(() => chunkStart(v2, 4), (e: unknown) => e instanceof BadInputError)
})

test.run()
