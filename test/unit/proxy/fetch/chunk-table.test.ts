import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TAG_BYTES } from '../../../../core/chunk-crypto.ts'
import { chunkCid } from '../../../../core/ids.ts'
import type { Manifest } from '../../../../core/manifest.ts'
import { ChunkTable } from '../../../../proxy/fetch/chunk-table.ts'

const ids = [1, 2, 3].map(i => chunkCid(new Uint8Array([i])).toString())
const base = { createdAt: '', publisher: '', cipher: '', meta: '', signer: '', sig: '', chunks: ids }

test('fixed chunks: sizes from chunkSize, the last one short', () => {
  const t = new ChunkTable({ ...base, v: 1, size: 2500, chunkSize: 1024 } as Manifest)
  assert.equal([0, 1, 2].map(i => t.blobBytes(i)), [1024 + TAG_BYTES, 1024 + TAG_BYTES, 452 + TAG_BYTES])
  assert.is(t.plainBytes(1, 3), 1476)
  assert.is(t.fullBlobBytes, 1024 + TAG_BYTES)
})

test('content-defined chunks: sizes from the offsets, the window sized by the mean chunk', () => {
  const t = new ChunkTable({ ...base, v: 2, size: 2500, chunkSize: 1500, offsets: [0, 700, 2000] } as Manifest)
  assert.equal([0, 1, 2].map(i => t.blobBytes(i)), [700 + TAG_BYTES, 1300 + TAG_BYTES, 500 + TAG_BYTES])
  assert.is(t.plainBytes(0, 3), 2500)
  assert.is(t.plainBytes(1, 2), 1300)
  assert.is(t.plainBytes(2, 2), 0)
  assert.is(t.fullBlobBytes, Math.ceil(2500 / 3) + TAG_BYTES)
})

test.run()
