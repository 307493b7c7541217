import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chunkCid } from '../../../../core/ids.ts'
import { Staging } from '../../../../manager/publish/staging.ts'

function blob (bytes: number): { id: string, bytes: Uint8Array } {
  const b = randomBytes(bytes)
  return { id: chunkCid(b).toString(), bytes: b }
}

async function withStaging (memoryBytes: number, fn: (staging: Staging, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'staging-'))
  try {
    const staging = new Staging(join(dir, 'staging'), { memoryBytes })
    await staging.init()
    await fn(staging, join(dir, 'staging'))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function bytesOf (staging: Staging, id: string): Promise<Buffer | undefined> {
  const b = await staging.read(id)
  if (b == null) return undefined
  const copy = Buffer.from(b.bytes)
  b.release()
  return copy
}

test('blobs stay in memory up to the budget, the overflow goes to files, and every one reads back until removed', async () => {
  await withStaging(2048, async (staging, dir) => {
    const [a, b, c] = [blob(1000), blob(1000), blob(1000)]
    for (const x of [a, b, c]) await staging.put(x.id, x.bytes)
    assert.is(staging.memoryUsed, 2000)
    // The third did not fit: it waits on disk.
    assert.equal(await readdir(dir), [c.id])
    for (const x of [a, b, c]) assert.equal(await bytesOf(staging, x.id), Buffer.from(x.bytes))

    await staging.remove(a.id)
    await staging.remove(c.id)
    assert.is(staging.memoryUsed, 1000)
    assert.is(await staging.read(a.id), undefined)
    assert.is(await staging.read(c.id), undefined)
    assert.equal(await readdir(dir), [])
    // The freed buffer serves the next blob: memory does not grow.
    const d = blob(1000)
    await staging.put(d.id, d.bytes)
    assert.is(staging.memoryAllocated, 2000)
    assert.equal(await bytesOf(staging, d.id), Buffer.from(d.bytes))
    // An id that is not a blob id never becomes a path.
    const refused = await staging.read('../../etc/passwd').then(() => false, () => true)
    assert.ok(refused, 'a malformed id is refused')
  })
})

test('a buffer still being sent is not reused until its last reader releases it', async () => {
  await withStaging(1000, async (staging, dir) => {
    const a = blob(1000)
    await staging.put(a.id, a.bytes)
    const sending = await staging.read(a.id)
    await staging.remove(a.id)
    // The only buffer is still lent out, so the next blob goes to a file and the bytes being sent stay intact.
    const b = blob(1000)
    await staging.put(b.id, b.bytes)
    assert.equal(await readdir(dir), [b.id])
    assert.equal(Buffer.from(sending!.bytes), Buffer.from(a.bytes))
    sending!.release()
    sending!.release() // twice is harmless
    const c = blob(1000)
    await staging.put(c.id, c.bytes)
    assert.is(staging.memoryAllocated, 1000)
    assert.equal(await bytesOf(staging, c.id), Buffer.from(c.bytes))
  })
})

test.run()
