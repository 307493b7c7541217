import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { CID } from 'multiformats/cid'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CapacityError } from '../../../core/errors.ts'
import { chunkCid } from '../../../core/ids.ts'
import { silentLogger } from '../../../core/log.ts'
import { signManifest } from '../../../core/manifest.ts'
import { BlobStore } from '../../../node/blob-store.ts'
import { ContentIndex } from '../../../node/content-index.ts'
import { LoadMeter } from '../../../node/load-meter.ts'
import { OrderExecutor } from '../../../node/order-executor.ts'

const logger = silentLogger()

/** A store and index in a temp dir, a fetcher that "downloads" from a map, an announcer that records. */
async function setup (blobs: Map<string, Uint8Array>, capacity = 1 << 20) {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-orders-'))
  const store = await BlobStore.open({ dir, capacity, logger })
  const index = new ContentIndex({ store, logger })
  let inFlight = 0
  let maxInFlight = 0
  const announced: string[] = []
  const withdrawn: string[] = []
  const fetcher = {
    fetch: async (cid: CID, _sources: readonly string[], _signal: AbortSignal) => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      try {
        await new Promise(resolve => setImmediate(resolve))
        const bytes = blobs.get(cid.toString())
        if (bytes == null) throw new Error('HTTP 404')
        await store.put(cid, bytes)
      } finally {
        inFlight--
      }
    }
  }
  const announcer = {
    announce: async (cid: CID) => { announced.push(cid.toString()); return true },
    withdraw: async (cid: CID) => { withdrawn.push(cid.toString()) }
  }
  const executor = new OrderExecutor({ store, index, fetcher, announcer, logger }, { concurrency: 3 })
  return { dir, store, index, executor, announced, withdrawn, maxInFlight: () => maxInFlight }
}

async function content (n: number) {
  const chunks = Array.from({ length: n }, (_, i) => new Uint8Array([i, i >> 8, 42]))
  const ids = chunks.map(c => chunkCid(c).toString())
  const signer = await generateKeyPair('Ed25519')
  const m = await signManifest({ size: 3 * n, chunkSize: 3, chunks: ids, createdAt: new Date().toISOString(), publisher: 'p', meta: '' }, signer, peerIdFromPrivateKey(signer).toString())
  const blobs = new Map<string, Uint8Array>([[m.id.toString(), m.bytes], ...ids.map((id, i) => [id, chunks[i]] as [string, Uint8Array])])
  return { id: m.id.toString(), ids, blobs }
}

const signal = new AbortController().signal
const src = (cid: string): { cid: string, sources: string[] } => ({ cid, sources: [`http://127.0.0.1:1/chunk/${cid}`] })

test('a store order fetches with bounded concurrency, indexes and announces the content', async () => {
  const c = await content(20)
  const t = await setup(c.blobs)
  try {
    const reply = await t.executor.store({ type: 'store', blobs: [c.id, ...c.ids].map(src), contents: [c.id] }, signal)
    assert.is(reply.results.length, 21)
    assert.ok(reply.results.every(r => r.ok))
    assert.ok(t.maxInFlight() <= 3, `at most 3 fetches at once, saw ${t.maxInFlight()}`)
    assert.ok(t.maxInFlight() > 1)
    assert.is(t.index.has(c.id), true)
    assert.equal(t.announced, [c.id])
  } finally {
    await rm(t.dir, { recursive: true, force: true })
  }
})

test('a failed blob gets its own error, and a content whose manifest is missing is reported not indexed', async () => {
  const c = await content(2)
  const missing = c.ids[1]
  const available = new Map(c.blobs)
  available.delete(missing)
  available.delete(c.id)
  const t = await setup(available)
  try {
    const reply = await t.executor.store({ type: 'store', blobs: [src(c.ids[0]), src(missing)], contents: [c.id] }, signal)
    assert.equal(reply.results.map(r => [r.cid, r.ok]), [[c.ids[0], true], [missing, false], [c.id, false]])
    assert.match(reply.results[1].error ?? '', /404/)
    assert.match(reply.results[2].error ?? '', /not indexed/)
    assert.is(t.index.has(c.id), false)
    assert.equal(t.announced, [])
  } finally {
    await rm(t.dir, { recursive: true, force: true })
  }
})

test('a blob beyond capacity fails with the capacity error', async () => {
  const big = new Uint8Array(2000).fill(7)
  const id = chunkCid(big).toString()
  const t = await setup(new Map([[id, big]]), 1000)
  try {
    const reply = await t.executor.store({ type: 'store', blobs: [src(id)], contents: [] }, signal)
    assert.is(reply.results[0].ok, false)
    assert.match(reply.results[0].error ?? '', new CapacityError().message)
    assert.is(t.store.used, 0)
  } finally {
    await rm(t.dir, { recursive: true, force: true })
  }
})

test('a delete order withdraws the content and removes its manifest with the listed blobs', async () => {
  const c = await content(3)
  const t = await setup(c.blobs)
  try {
    await t.executor.store({ type: 'store', blobs: [c.id, ...c.ids].map(src), contents: [c.id] }, signal)
    const reply = await t.executor.delete({ type: 'delete', blobs: [c.ids[0], c.ids[1]], contents: [c.id] }, signal)
    assert.equal(reply.removed.sort(), [c.id, c.ids[0], c.ids[1]].sort())
    assert.equal(t.withdrawn, [c.id])
    assert.is(t.index.has(c.id), false)
    assert.equal(t.store.list().map(b => b.cid.toString()), [c.ids[2]])
  } finally {
    await rm(t.dir, { recursive: true, force: true })
  }
})

test('the load meter reports rates per content over the interval and starts afresh', () => {
  let now = 1000
  const meter = new LoadMeter({ now: () => now })
  meter.request(['a'])
  meter.sent(['a'], 4000)
  meter.request(['a', 'b'])
  meter.sent(['a', 'b'], 2000)
  now += 2000
  const r = meter.read()
  assert.is(r.seconds, 2)
  assert.is(r.egressRate, 3000)
  assert.equal(r.contents, { a: { requests: 1, bytes: 3000 }, b: { requests: 0.5, bytes: 1000 } })
  now += 1000
  assert.equal(meter.read(), { seconds: 1, egressRate: 0, contents: {} })
})

test.run()
