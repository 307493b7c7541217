import { mkdtemp, rm, utimes } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { chunkCid } from '../../../core/ids.ts'
import { silentLogger } from '../../../core/log.ts'
import { signManifest } from '../../../core/manifest.ts'
import { BlobStore } from '../../../node/blob-store.ts'
import { ContentIndex } from '../../../node/content-index.ts'
import { GarbageCollector } from '../../../node/gc.ts'

const logger = silentLogger()
const HOUR = 3_600_000

test('orphans older than the grace period go; referenced and recent blobs stay', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-gc-'))
  try {
    let store = await BlobStore.open({ dir, capacity: 1 << 20, logger })
    const used = new Uint8Array([1, 2, 3])
    const oldOrphan = new Uint8Array([4, 5, 6])
    const newOrphan = new Uint8Array([7, 8, 9])
    const signer = await generateKeyPair('Ed25519')
    const manifest = await signManifest({ size: 3, chunkSize: 3, chunks: [chunkCid(used).toString()], createdAt: new Date().toISOString(), publisher: 'p', meta: '' }, signer, peerIdFromPrivateKey(signer).toString())
    for (const b of [used, oldOrphan, newOrphan]) await store.put(chunkCid(b), b)
    await store.put(manifest.id, manifest.bytes)
    // Everything but the fresh orphan was written long ago.
    const longAgo = new Date(Date.now() - 10 * HOUR)
    for (const cid of [chunkCid(used), chunkCid(oldOrphan), manifest.id]) {
      const sub = Buffer.from(cid.multihash.digest.subarray(0, 1)).toString('hex')
      await utimes(join(dir, sub, cid.toString()), longAgo, longAgo)
    }
    store = await BlobStore.open({ dir, capacity: 1 << 20, logger })
    const index = new ContentIndex({ store, logger })
    await index.load()

    const gc = new GarbageCollector({ store, index, logger }, { graceMs: 6 * HOUR })
    assert.equal(await gc.sweep(), [chunkCid(oldOrphan).toString()])
    assert.is(store.has(chunkCid(oldOrphan)), false)
    assert.is(store.has(chunkCid(used)), true)
    assert.is(store.has(manifest.id), true)
    assert.is(store.has(chunkCid(newOrphan)), true)

    // Once its content is forgotten, the old chunk and manifest are orphans too.
    index.remove(manifest.id)
    assert.equal((await gc.sweep()).sort(), [chunkCid(used).toString(), manifest.id.toString()].sort())
    assert.is(store.count, 1)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('the chore sweeps on its own until stopped', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-gc-'))
  try {
    const store = await BlobStore.open({ dir, capacity: 1 << 20, logger })
    const orphan = new Uint8Array([1])
    await store.put(chunkCid(orphan), orphan)
    const gc = new GarbageCollector({ store, index: new ContentIndex({ store, logger }), logger, now: () => Date.now() + 2 * HOUR }, { graceMs: HOUR, intervalMs: 5 })
    gc.start()
    gc.start()
    const end = Date.now() + 10_000
    while (store.count > 0 && Date.now() < end) await new Promise(resolve => setTimeout(resolve, 5))
    await gc.stop()
    await gc.stop()
    assert.is(store.count, 0)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
