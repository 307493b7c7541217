import { mkdtemp, readdir, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CapacityError, HashMismatchError, NotFoundError } from '../../../core/errors.ts'
import { chunkCid } from '../../../core/ids.ts'
import { silentLogger } from '../../../core/log.ts'
import { BlobStore } from '../../../node/blob-store.ts'

const logger = silentLogger()

/** uvu's assert has no async form of `throws`. */
async function rejects (p: Promise<unknown>, check: (e: unknown) => boolean): Promise<void> {
  let error: unknown
  try {
    await p
  } catch (err) {
    error = err
  }
  assert.ok(error !== undefined, 'expected a rejection')
  assert.ok(check(error), `unexpected error: ${String(error)}`)
}
const dirs: string[] = []

async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-blob-store-'))
  dirs.push(dir)
  return dir
}

function bytes (n: number, seed: number): Uint8Array {
  return new Uint8Array(n).map((_, i) => (i * 31 + seed) % 256)
}

/** Every file under `dir`, relative paths. */
async function filesUnder (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name).slice(dir.length + 1))
  }
  return out.sort()
}

test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

test('a blob put is read back byte for byte, and survives reopening', async () => {
  const dir = await tempDir()
  const store = await BlobStore.open({ dir, capacity: 1 << 20, logger })
  const blob = bytes(200_000, 1)
  const cid = chunkCid(blob)
  assert.is(store.has(cid), false)
  await store.put(cid, blob)
  assert.is(store.has(cid), true)
  assert.is(store.size(cid), blob.length)
  assert.is(store.used, blob.length)
  assert.is(store.count, 1)
  assert.equal(Buffer.from(await store.read(cid)), Buffer.from(blob))

  const reader = await store.openReader(cid)
  const middle = await reader.read(1000, 5000)
  await reader.close()
  assert.equal(Buffer.from(middle), Buffer.from(blob.subarray(1000, 6000)))

  const again = await BlobStore.open({ dir, capacity: 1 << 20, logger })
  assert.is(again.used, blob.length)
  assert.equal(again.list().map(b => b.cid.toString()), [cid.toString()])
  assert.equal(Buffer.from(await again.read(cid)), Buffer.from(blob))
})

test('a put whose bytes do not match the id is refused and leaves nothing', async () => {
  const dir = await tempDir()
  const store = await BlobStore.open({ dir, capacity: 1 << 20, logger })
  const cid = chunkCid(bytes(1000, 1))
  await rejects(store.put(cid, bytes(1000, 2)), (e: unknown) => e instanceof HashMismatchError)
  assert.is(store.has(cid), false)
  assert.is(store.used, 0)
  assert.equal(await filesUnder(dir), [])
})

test('a streamed write that does not hash to its id is refused and leaves nothing', async () => {
  const dir = await tempDir()
  const store = await BlobStore.open({ dir, capacity: 1 << 20, logger })
  const good = bytes(100_000, 3)
  const cid = chunkCid(good)
  const bad = Uint8Array.from(good)
  bad[99_999] ^= 1
  async function * pieces (b: Uint8Array): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < b.length; i += 16_384) yield b.subarray(i, i + 16_384)
  }
  await rejects(store.write(cid, pieces(bad)), (e: unknown) => e instanceof HashMismatchError)
  assert.is(store.has(cid), false)
  assert.is(store.used, 0)
  assert.equal(await filesUnder(dir), [])
  assert.is(await store.write(cid, pieces(good)), good.length)
  assert.equal(Buffer.from(await store.read(cid)), Buffer.from(good))
})

test('a put that would exceed capacity throws CapacityError and writes nothing', async () => {
  const dir = await tempDir()
  const store = await BlobStore.open({ dir, capacity: 1500, logger })
  const first = bytes(1000, 1)
  await store.put(chunkCid(first), first)
  const second = bytes(1000, 2)
  await rejects(store.put(chunkCid(second), second), (e: unknown) => e instanceof CapacityError)
  assert.is(store.has(chunkCid(second)), false)
  assert.is(store.used, 1000)
  assert.is((await filesUnder(dir)).length, 1)

  async function * once (b: Uint8Array): AsyncGenerator<Uint8Array> { yield b }
  await rejects(store.write(chunkCid(second), once(second)), (e: unknown) => e instanceof CapacityError)
  assert.is(store.used, 1000)
  assert.is((await filesUnder(dir)).length, 1)
})

test('temp files left by a crash are removed on reopening and used is right', async () => {
  const dir = await tempDir()
  const store = await BlobStore.open({ dir, capacity: 1 << 20, logger })
  const blob = bytes(5000, 9)
  const cid = chunkCid(blob)
  await store.put(cid, blob)
  const [held] = await filesUnder(dir)
  const sub = held.split('/')[0]
  // What a crash between open and rename would leave: partial bytes under a temp name.
  await writeFile(join(dir, sub, `${cid.toString()}.deadbeef.tmp`), blob.subarray(0, 100))
  await mkdir(join(dir, 'ab'), { recursive: true })
  await writeFile(join(dir, 'ab', 'whatever.tmp'), 'partial')

  const reopened = await BlobStore.open({ dir, capacity: 1 << 20, logger })
  assert.equal(await filesUnder(dir), [held])
  assert.is(reopened.used, blob.length)
  assert.is(reopened.count, 1)
})

test('delete frees space and the blob is gone', async () => {
  const dir = await tempDir()
  const store = await BlobStore.open({ dir, capacity: 1000, logger })
  const a = bytes(800, 1)
  const b = bytes(800, 2)
  await store.put(chunkCid(a), a)
  await rejects(store.put(chunkCid(b), b), (e: unknown) => e instanceof CapacityError)
  assert.is(await store.delete(chunkCid(a)), true)
  assert.is(await store.delete(chunkCid(a)), false)
  assert.is(store.used, 0)
  assert.is(store.has(chunkCid(a)), false)
  await rejects(store.read(chunkCid(a)), (e: unknown) => e instanceof NotFoundError)
  await store.put(chunkCid(b), b)
  assert.is(store.used, 800)
  assert.is((await BlobStore.open({ dir, capacity: 1000, logger })).used, 800)
})

test('a delete limited to old blobs keeps a blob refreshed since', async () => {
  const dir = await tempDir()
  const store = await BlobStore.open({ dir, capacity: 1 << 20, logger })
  const blob = bytes(100, 4)
  const cid = chunkCid(blob)
  await store.put(cid, blob)
  const before = (store.info(cid)?.mtimeMs ?? 0) - 1
  assert.is(await store.delete(cid, { olderThan: before }), false)
  assert.is(store.has(cid), true)
  assert.is(await store.refresh(cid), true)
  assert.is(await store.delete(cid, { olderThan: Date.now() + 1000 }), true)
  assert.is(await store.refresh(cid), false)
})

test('concurrent puts of one blob count it once', async () => {
  const dir = await tempDir()
  const store = await BlobStore.open({ dir, capacity: 1 << 20, logger })
  const blob = bytes(10_000, 5)
  const cid = chunkCid(blob)
  await Promise.all([store.put(cid, blob), store.put(cid, blob), store.put(cid, blob)])
  assert.is(store.used, blob.length)
  assert.is((await filesUnder(dir)).length, 1)
})

test.run()
