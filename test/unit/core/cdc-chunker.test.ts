import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { BadInputError } from '../../../core/errors.ts'
import { CDC_DEFAULTS, cdcChunks, checkCdcSizes, type CdcSizes } from '../../../core/cdc-chunker.ts'
import { pieces } from '../../support/byte-pieces.ts'

const SMALL: CdcSizes = { min: 1024, avg: 4096, max: 16384 }

/** Deterministic pseudo-random bytes (a SHA-256 counter stream): the same on every run. */
function noise (n: number, seed: string): Buffer {
  const out = Buffer.allocUnsafe(n)
  for (let i = 0, block = 0; i < n; block++) {
    const h = createHash('sha256').update(`${seed}:${block}`).digest()
    i += h.copy(out, i)
  }
  return out
}


interface Cut { offset: number, length: number, hash: string }

async function cuts (data: Uint8Array, sizes: CdcSizes = SMALL, pieceSizes = [data.length]): Promise<{ chunks: Cut[], total: number }> {
  const chunks: Cut[] = []
  const gen = cdcChunks(pieces(data, pieceSizes), sizes)
  let step = await gen.next()
  while (step.done !== true) {
    const c = step.value
    assert.is(c.index, chunks.length)
    chunks.push({ offset: c.offset, length: c.bytes.length, hash: createHash('sha256').update(c.bytes).digest('hex') })
    step = await gen.next()
  }
  return { chunks, total: step.value }
}

test('chunks tile the stream and respect min and max', async () => {
  const data = noise(400_000, 'tile')
  const { chunks, total } = await cuts(data)
  assert.is(total, data.length)
  let at = 0
  for (const [i, c] of chunks.entries()) {
    assert.is(c.offset, at)
    assert.ok(c.length <= SMALL.max, `chunk ${i} is ${c.length} bytes`)
    if (i < chunks.length - 1) assert.ok(c.length >= SMALL.min, `chunk ${i} is ${c.length} bytes`)
    at += c.length
  }
  assert.is(at, data.length)
  // Sizes gather around avg: neither everything at max nor at min.
  const mean = data.length / chunks.length
  assert.ok(mean > SMALL.avg / 2 && mean < SMALL.avg * 2, `mean chunk ${mean}`)
  assert.ok(chunks.filter(c => c.length === SMALL.max).length < chunks.length / 4)
})

test('bytes that never match the mask are cut at max', async () => {
  const { chunks } = await cuts(new Uint8Array(50_000))
  // A run of zeros hashes to a constant that is not a cut: only max cuts it.
  assert.equal(chunks.map(c => c.length), [16384, 16384, 16384, 848])
})

test('the same bytes in any piece sizes give the same chunks', async () => {
  const data = noise(300_000, 'pieces')
  const whole = await cuts(data)
  for (const sizes of [[1], [7, 1000, 3], [4095, 4097], [65536], [SMALL.max + 1, 13]]) {
    const split = await cuts(data, SMALL, sizes.length === 1 && sizes[0] === 1 ? [1, 2, 3, 5, 8, 13, 21, 34, 55, 89] : sizes)
    assert.equal(split.chunks, whole.chunks, `pieces ${sizes.join(',')}`)
  }
})

test('boundaries are content-defined: an insertion near the start moves only the first ones', async () => {
  const data = noise(600_000, 'edit')
  const before = await cuts(data)
  const edited = Buffer.concat([data.subarray(0, 100), noise(300, 'inserted'), data.subarray(100)])
  const after = await cuts(edited)
  const old = new Set(before.chunks.map(c => c.hash))
  const fresh = after.chunks.filter(c => !old.has(c.hash))
  assert.ok(fresh.length >= 1 && fresh.length <= 2, `${fresh.length} new chunks`)
  // Every boundary past the edit is the old one shifted by the insertion.
  const shifted = new Set(before.chunks.map(c => c.offset + 300))
  const moved = after.chunks.filter(c => c.offset > 100 && !shifted.has(c.offset))
  assert.ok(moved.length <= 1, `${moved.length} boundaries moved`)
  assert.ok(after.chunks.length > 50)
})

test('an overwrite in the middle changes the chunks around it only', async () => {
  const data = noise(600_000, 'overwrite')
  const before = await cuts(data)
  const edited = Buffer.from(data)
  noise(2000, 'patch').copy(edited, 300_000)
  const after = await cuts(edited)
  const old = new Set(before.chunks.map(c => c.hash))
  const fresh = after.chunks.filter(c => !old.has(c.hash))
  assert.ok(fresh.length >= 1 && fresh.length <= 3, `${fresh.length} new chunks`)
  for (const c of fresh) assert.ok(c.offset + c.length > 300_000 - SMALL.max && c.offset < 302_000 + SMALL.max)
})

test('an empty stream gives no chunk; a short one gives one', async () => {
  assert.equal((await cuts(new Uint8Array(0))).chunks, [])
  const short = await cuts(noise(500, 'short'))
  assert.equal(short.chunks.map(c => c.length), [500])
})

test('the defaults are the measured ones, and bad sizes are refused', () => {
  assert.equal({ ...CDC_DEFAULTS }, { min: 512 * 1024, avg: 1024 * 1024, max: 2 * 1024 * 1024 })
  for (const bad of [{ min: 1024, avg: 3000, max: 9000 }, { min: 4096, avg: 4096, max: 9000 }, { min: 1024, avg: 4096, max: 4096 }, { min: 0, avg: 4096, max: 9000 }, { min: 1, avg: 32, max: 100 }]) {
    assert.throws(() => checkCdcSizes(bad), (e: unknown) => e instanceof BadInputError, JSON.stringify(bad))
  }
})

test.run()
