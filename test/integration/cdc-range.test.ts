/**
 * Content-defined chunks end to end: `cdn up --chunking cdc` cuts a published
 * file by content (a version 2 manifest with offsets), and the proxy answers
 * Range requests that start, end and cross those variable boundaries with
 * exactly the right bytes. `cdn publish --chunking fixed` still gets fixed
 * chunks (version 1) from the same manager.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { CDC_DEFAULTS } from '../../core/cdc-chunker.ts'
import { chunkLength, decodeManifest, type Manifest } from '../../core/manifest.ts'
import { cdnJson, getJson, randomFile, startNetwork, tempDir, type Network } from './harness.ts'

interface Published { id: string, bytes: Buffer, manifest: Manifest }
const test = suite<{ net: Network, dir: string, cdc: Published, fixed: Published }>('content-defined chunks through the proxy')

async function publish (ctx: { net: Network, dir: string }, name: string, size: number, extra: string[] = []): Promise<Published> {
  const file = await randomFile(ctx.dir, name, size)
  const pub = await cdnJson(['publish', file, '--manager', ctx.net.manager, '--token-file', ctx.net.tokenFile, '--replicas', '2', ...extra])
  const resolved = await getJson(`${ctx.net.manager}/api/contents/${pub.id}`)
  assert.is(resolved.status, 200)
  return { id: pub.id, bytes: await readFile(file), manifest: decodeManifest(Buffer.from(resolved.body.manifest, 'base64')) }
}

test.before(async (ctx) => {
  ctx.net = await startNetwork({ nodes: 3, extra: ['--chunking', 'cdc'] })
  ctx.dir = await tempDir('cdc-range')
  ctx.cdc = await publish(ctx, 'cut-by-content.bin', 9 * 1024 * 1024 + 4321)
  ctx.fixed = await publish(ctx, 'fixed.bin', 3 * 1024 * 1024 + 17, ['--chunking', 'fixed'])
})

test.after(async (ctx) => {
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

async function range (net: Network, id: string, spec: string): Promise<{ status: number, contentRange: string | null, body: Buffer }> {
  const res = await fetch(`${net.proxy}/c/${id}`, { headers: { range: `bytes=${spec}` } })
  return { status: res.status, contentRange: res.headers.get('content-range'), body: Buffer.from(await res.arrayBuffer()) }
}

async function expectRange (net: Network, p: Published, start: number, end: number): Promise<void> {
  const r = await range(net, p.id, `${start}-${end}`)
  assert.is(r.status, 206, `bytes ${start}-${end}`)
  assert.is(r.contentRange, `bytes ${start}-${end}/${p.bytes.length}`)
  assert.ok(r.body.equals(p.bytes.subarray(start, end + 1)), `bytes ${start}-${end} differ`)
}

test('the manager started with --chunking cdc cuts by content: version 2, chunks of varying size', ({ cdc }) => {
  const m = cdc.manifest
  assert.is(m.v, 2)
  assert.is(m.chunkSize, CDC_DEFAULTS.max)
  assert.ok(m.offsets != null && m.offsets.length === m.chunks.length && m.chunks.length >= 4)
  const lengths = m.chunks.map((_, i) => chunkLength(m, i))
  assert.ok(new Set(lengths).size === lengths.length, `all different: ${lengths.join(',')}`)
  assert.ok(m.offsets.some(o => o % (1024 * 1024) !== 0), 'boundaries off the MiB grid')
})

test('Range requests on, across and between variable chunk boundaries return the exact bytes', async ({ net, cdc }) => {
  const offsets = cdc.manifest.offsets!
  const size = cdc.bytes.length
  for (const b of offsets.slice(1)) {
    await expectRange(net, cdc, b - 1, b) // the last byte of one chunk and the first of the next
    await expectRange(net, cdc, b, b + 99) // starts exactly on a boundary
    await expectRange(net, cdc, b - 100, b - 1) // ends exactly on one
  }
  await expectRange(net, cdc, offsets[1] + 5, offsets[3] + 5) // three chunks, from inside the second to inside the fourth
  await expectRange(net, cdc, offsets[2] + 1, offsets[2] + 1) // one byte inside a chunk
  const tail = await range(net, cdc.id, '-1000')
  assert.is(tail.status, 206)
  assert.ok(tail.body.equals(cdc.bytes.subarray(size - 1000)))
  const last = offsets[offsets.length - 1]
  const open = await range(net, cdc.id, `${last - 3}-`)
  assert.is(open.contentRange, `bytes ${last - 3}-${size - 1}/${size}`)
  assert.ok(open.body.equals(cdc.bytes.subarray(last - 3)))
  const past = await range(net, cdc.id, `${size}-`)
  assert.is(past.status, 416)
})

test('a whole GET and cdn get return the file', async ({ net, dir, cdc }) => {
  const whole = await fetch(`${net.proxy}/c/${cdc.id}`)
  assert.is(whole.status, 200)
  assert.ok(Buffer.from(await whole.arrayBuffer()).equals(cdc.bytes))
  const out = join(dir, 'got.bin')
  const got = await cdnJson(['get', cdc.id, '-o', out, '--manager', net.manager])
  assert.is(got.size, cdc.bytes.length)
  assert.ok((await readFile(out)).equals(cdc.bytes))
})

test('cdn publish --chunking fixed still makes fixed chunks, a version 1 manifest, ranges intact', async ({ net, fixed }) => {
  assert.is(fixed.manifest.v, 1)
  assert.is(fixed.manifest.offsets, undefined)
  assert.is(fixed.manifest.chunks.length, 4)
  const mib = 1024 * 1024
  await expectRange(net, fixed, mib - 1, 2 * mib)
  await expectRange(net, fixed, 3 * mib - 2, 3 * mib + 16)
})

test.run()
