import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chunkCid } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import { ChunkCache } from '../../../../proxy/state/chunk-cache.ts'

const blob = (fill: number, size = 1000): Uint8Array => new Uint8Array(size).fill(fill)

test('least recently used chunks are evicted to stay within the size bound', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-cache-'))
  try {
    const cache = new ChunkCache({ dir, maxBytes: 3000, logger: silentLogger() })
    await cache.open()
    const [a, b, c, d] = [1, 2, 3, 4].map(n => blob(n))
    for (const x of [a, b, c]) await cache.put(chunkCid(x), x)
    assert.ok(await cache.get(chunkCid(a)), 'a is cached')
    await cache.put(chunkCid(d), d)
    // b was the least recently used once a was read again.
    assert.is(await cache.get(chunkCid(b)), undefined)
    assert.ok(await cache.get(chunkCid(a)))
    assert.ok(await cache.get(chunkCid(d)))
    assert.ok(cache.stats().bytes <= 3000)
    assert.is((await readdir(dir)).length, 3)
    // A second cache over the same directory finds what the first one left.
    const again = new ChunkCache({ dir, maxBytes: 3000, logger: silentLogger() })
    await again.open()
    assert.equal(Buffer.from((await again.get(chunkCid(c)))!), Buffer.from(c))
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('a chunk damaged on disk is a miss, never wrong bytes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-cache-'))
  try {
    const cache = new ChunkCache({ dir, maxBytes: 10_000, logger: silentLogger() })
    await cache.open()
    const x = blob(9)
    const cid = chunkCid(x)
    await cache.put(cid, x)
    await writeFile(join(dir, cid.toString()), blob(8))
    assert.is(await cache.get(cid), undefined)
    assert.is(cache.has(cid), false)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
