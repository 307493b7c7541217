/**
 * The plan of a differential upload, cut on the publisher's machine: exactly
 * the chunks core/cdc-chunker.ts gives for the same bytes (so the manager and
 * the CLI agree on every boundary), fixed 1 MiB chunks on request, and no
 * chunk at all for an empty file.
 */
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { CDC_DEFAULTS, cdcChunks } from '../../../core/cdc-chunker.ts'
import { FIXED_CHUNK_BYTES, planFile, type FileChunk } from '../../../cli/file-chunks.ts'
import { pieces } from '../../support/byte-pieces.ts'

const test = suite<{ dir: string }>('file chunks')
const MiB = 1024 * 1024

test.before.each(async (ctx) => { ctx.dir = await mkdtemp(join(tmpdir(), 'cdn-file-chunks-')) })
test.after.each(async (ctx) => { await rm(ctx.dir, { recursive: true, force: true }) })

/** What cdcChunks gives for the bytes handed over in one piece. */
async function reference (data: Uint8Array): Promise<FileChunk[]> {
  const out: FileChunk[] = []
  for await (const c of cdcChunks(pieces(data, [data.length]), CDC_DEFAULTS)) {
    out.push({ index: c.index, offset: c.offset, size: c.bytes.length, hash: createHash('sha256').update(c.bytes).digest('hex') })
  }
  return out
}

async function fileOf (dir: string, data: Uint8Array): Promise<string> {
  const path = join(dir, 'data.bin')
  await writeFile(path, data)
  return path
}

test('cdc: the same offsets, sizes and sha256 hashes as cdcChunks, tiling the file', async ({ dir }) => {
  const data = randomBytes(11 * MiB + 4321)
  const seen: number[] = []
  const planned = await planFile(await fileOf(dir, data), { onProgress: (n) => { seen.push(n) } })
  const expected = await reference(data)
  assert.ok(expected.length >= 6, `${expected.length} chunks`)
  assert.equal(planned, expected)
  assert.is(planned.reduce((sum, c) => sum + c.size, 0), data.length)
  assert.ok(planned.some(c => c.size !== CDC_DEFAULTS.max && c.index < planned.length - 1), 'cut by content, not only at max')
  assert.is(seen.at(-1), data.length, 'hashing progress ends at the file size')
})

/** The same pseudo-random bytes on every run (a SHA-256 counter stream), so the test's outcome never varies. */
function noise (n: number, seed: string): Buffer {
  const out = Buffer.allocUnsafe(n)
  for (let i = 0, block = 0; i < n; block++) i += createHash('sha256').update(`${seed}:${block}`).digest().copy(out, i)
  return out
}

test('cdc: an insertion at the start leaves the later chunks as they were', async ({ dir }) => {
  const data = noise(8 * MiB, 'file')
  const before = await planFile(await fileOf(dir, data))
  const after = await planFile(await fileOf(dir, Buffer.concat([noise(4096, 'insert'), data])))
  const old = new Set(before.map(c => c.hash))
  const fresh = after.filter(c => !old.has(c.hash))
  assert.ok(fresh.length <= 3, `${fresh.length} new chunks of ${after.length}`)
})

test('fixed: 1 MiB chunks, the last shorter', async ({ dir }) => {
  const data = randomBytes(2 * MiB + 100)
  const planned = await planFile(await fileOf(dir, data), { mode: 'fixed' })
  assert.equal(planned.map(c => [c.index, c.offset, c.size]), [[0, 0, FIXED_CHUNK_BYTES], [1, MiB, MiB], [2, 2 * MiB, 100]])
  assert.is(planned[2].hash, createHash('sha256').update(data.subarray(2 * MiB)).digest('hex'))
})

test('an empty file has no chunks, whichever the mode', async ({ dir }) => {
  const path = await fileOf(dir, Buffer.alloc(0))
  assert.equal(await planFile(path), [])
  assert.equal(await reference(Buffer.alloc(0)), [])
  assert.equal(await planFile(path, { mode: 'fixed' }), [])
})

test.run()
