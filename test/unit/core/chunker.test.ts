import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TooLargeError } from '../../../core/errors.ts'
import { chunksOf, chunkStream, parseChunkingMode } from '../../../core/chunker.ts'
import { BadInputError } from '../../../core/errors.ts'
import { pieces } from '../../support/byte-pieces.ts'

const CHUNK = 1000

/** uvu 0.5 has no assert.rejects. */
async function rejects (fn: () => Promise<unknown>, check: (e: unknown) => boolean = () => true): Promise<void> {
  try {
    await fn()
  } catch (err) {
    assert.ok(check(err), `unexpected error: ${String(err)}`)
    return
  }
  assert.unreachable('expected a rejection')
}

function bytes (n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) % 256)
}


async function collect (data: Uint8Array, sizes: number[], chunkSize = CHUNK): Promise<Array<{ index: number, bytes: Buffer }>> {
  const out: Array<{ index: number, bytes: Buffer }> = []
  // The chunker reuses its buffer, so each chunk is copied before asking for the next.
  for await (const c of chunkStream(pieces(data, sizes), chunkSize)) out.push({ index: c.index, bytes: Buffer.from(c.bytes) })
  return out
}

for (const size of [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK, 3 * CHUNK + 1, 5 * CHUNK + 777]) {
  for (const sizes of [[1], [7, 333, 1], [999, 1001, 13], [4096]]) {
    test(`${size} bytes in pieces of ${sizes.join('/')} give full chunks and one short tail`, async () => {
      const data = bytes(size)
      const chunks = await collect(data, sizes)
      assert.is(chunks.length, Math.ceil(size / CHUNK))
      chunks.forEach((c, i) => {
        assert.is(c.index, i)
        assert.is(c.bytes.length, Math.min(CHUNK, size - i * CHUNK))
      })
      assert.equal(Buffer.concat(chunks.map(c => c.bytes)), Buffer.from(data))
    })
  }
}

test('the generator returns the byte count', async () => {
  const gen = chunkStream(pieces(bytes(2500), [300]), CHUNK)
  let r = await gen.next()
  while (r.done !== true) r = await gen.next()
  assert.is(r.value, 2500)
})

test('a stream over maxBytes is refused', async () => {
  await rejects(async () => {
    for await (const _ of chunkStream(pieces(bytes(2001), [500]), CHUNK, { maxBytes: 2000 })) { /* drain */ }
  }, (e: unknown) => e instanceof TooLargeError)
  let n = 0
  for await (const _ of chunkStream(pieces(bytes(2000), [500]), CHUNK, { maxBytes: 2000 })) n++
  assert.is(n, 2)
})

const SIZES = { min: 256, avg: 1024, max: 4096 }

test('chunksOf cuts by content when asked, tiles the stream and returns its length', async () => {
  const data = Uint8Array.from({ length: 50_000 }, (_, i) => (i * 2654435761) >>> 24)
  const gen = chunksOf(pieces(data, [333, 4097]), { kind: 'cdc', sizes: SIZES })
  const parts: Buffer[] = []
  let r = await gen.next()
  while (r.done !== true) {
    assert.is(r.value.offset, parts.reduce((n, p) => n + p.length, 0))
    parts.push(Buffer.from(r.value.bytes))
    r = await gen.next()
  }
  assert.is(r.value, data.length)
  assert.ok(parts.length > 5 && new Set(parts.map(p => p.length)).size > 1)
  assert.equal(Buffer.concat(parts), Buffer.from(data))
})

test('chunksOf refuses a content-defined stream over maxBytes', async () => {
  await rejects(async () => {
    for await (const _ of chunksOf(pieces(bytes(2001), [500]), { kind: 'cdc', sizes: SIZES }, { maxBytes: 2000 })) { /* drain */ }
  }, (e: unknown) => e instanceof TooLargeError)
})

test('chunking modes are fixed or cdc', () => {
  assert.is(parseChunkingMode('cdc', 'x'), 'cdc')
  assert.is(parseChunkingMode('fixed', 'x'), 'fixed')
  assert.throws(() => parseChunkingMode('CDC', 'x'), (e: unknown) => e instanceof BadInputError)
})

test('a non-positive chunk size is refused', async () => {
  await rejects(async () => {
    for await (const _ of chunkStream(pieces(bytes(10), [5]), 0)) { /* drain */ }
  })
})

test.run()
