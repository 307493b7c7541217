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

test('blobs stay in memory up to the budget, the overflow goes to files, and every one reads back until removed', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'staging-'))
  try {
    const staging = new Staging(join(dir, 'staging'), { memoryBytes: 2048 })
    await staging.init()
    const [a, b, c] = [blob(1000), blob(1000), blob(1000)]
    for (const x of [a, b, c]) await staging.put(x.id, x.bytes)
    assert.is(staging.memoryUsed, 2000)
    // The third did not fit: it waits on disk.
    assert.equal(await readdir(join(dir, 'staging')), [c.id])
    for (const x of [a, b, c]) assert.equal(Buffer.from((await staging.read(x.id))!), Buffer.from(x.bytes))

    await staging.remove(a.id)
    await staging.remove(c.id)
    assert.is(staging.memoryUsed, 1000)
    assert.is(await staging.read(a.id), undefined)
    assert.is(await staging.read(c.id), undefined)
    assert.equal(await readdir(join(dir, 'staging')), [])
    // Room freed by a removal is used again.
    const d = blob(1000)
    await staging.put(d.id, d.bytes)
    assert.is(staging.memoryUsed, 2000)
    // An id that is not a blob id never becomes a path.
    const refused = await staging.read('../../etc/passwd').then(() => false, () => true)
    assert.ok(refused, 'a malformed id is refused')
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
