import { once } from 'node:events'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { TAG_BYTES } from '../../../../core/chunk-crypto.ts'
import { HashMismatchError, ProtocolError, TimeoutError, UpstreamError } from '../../../../core/errors.ts'
import { parseBlobId } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import { ChunkFetcher } from '../../../../proxy/fetch/chunk-fetcher.ts'
import { DeadlineClock } from '../../../../proxy/fetch/deadline.ts'
import { bitmapOf, hasChunk, parseHave } from '../../../../core/data-plane-wire.ts'
import { makeContent, makeSigner, startStandInNode, type StandInNode, type TestContent } from '../../proxy-standins.ts'

interface Ctx { node: StandInNode, content: TestContent, deadlines: DeadlineClock, fetcher: ChunkFetcher }
const test = suite<Ctx>('chunk fetcher')

test.before.each(async (ctx) => {
  ctx.node = await startStandInNode()
  ctx.content = await makeContent({ size: 100_000, chunkSize: 32 * 1024, signer: await makeSigner() })
  ctx.node.hold(ctx.content, [0, 1, 3])
  ctx.deadlines = new DeadlineClock({ tickMs: 20 })
  ctx.fetcher = new ChunkFetcher({ deadlines: ctx.deadlines, logger: silentLogger() })
})

test.after.each(async (ctx) => {
  await ctx.fetcher.close()
  ctx.deadlines.close()
  await ctx.node.close()
})

async function failure (p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (err) {
    return err
  }
  throw new Error('expected a failure')
}

const blobSize = (ctx: Ctx, i: number): number => Math.min(32 * 1024, 100_000 - i * 32 * 1024) + TAG_BYTES

test('a blob comes back whole and verified, with its timings', async (ctx) => {
  const cid = ctx.content.chunkIds[3]
  const got = await ctx.fetcher.fetchBlob(ctx.node, parseBlobId(cid), { expectedBytes: blobSize(ctx, 3) })
  assert.ok(Buffer.from(got.bytes).equals(Buffer.from(ctx.content.blobs.get(cid) as Uint8Array)))
  assert.ok(got.totalMs >= got.ttfbMs)
  // The manifest is fetched without knowing its size in advance.
  const manifest = await ctx.fetcher.fetchBlob(ctx.node, parseBlobId(ctx.content.id), { maxBytes: 1024 * 1024 })
  assert.ok(Buffer.from(manifest.bytes).equals(Buffer.from(ctx.content.manifestBytes)))
})

test('bytes that do not match the id are a HashMismatchError', async (ctx) => {
  const cid = ctx.content.chunkIds[0]
  ctx.node.faults.set(cid, 'corrupt')
  assert.instance(await failure(ctx.fetcher.fetchBlob(ctx.node, parseBlobId(cid), { expectedBytes: blobSize(ctx, 0) })), HashMismatchError)
  ctx.node.faults.set(cid, 'long')
  assert.instance(await failure(ctx.fetcher.fetchBlob(ctx.node, parseBlobId(cid), { expectedBytes: blobSize(ctx, 0) })), HashMismatchError)
  // A size other than the manifest's, announced up front, is refused before the body is read.
  assert.instance(await failure(ctx.fetcher.fetchBlob(ctx.node, parseBlobId(ctx.content.chunkIds[1]), { expectedBytes: 10 })), HashMismatchError)
})

test('a missing blob, a server error and a cut connection are UpstreamErrors with the reason', async (ctx) => {
  const missing = await failure(ctx.fetcher.fetchBlob(ctx.node, parseBlobId(ctx.content.chunkIds[2]), { expectedBytes: blobSize(ctx, 2) }))
  assert.instance(missing, UpstreamError)
  assert.match((missing as Error).message, /404.*no such blob/)
  const cid = ctx.content.chunkIds[1]
  ctx.node.faults.set(cid, 'fail')
  const broken = await failure(ctx.fetcher.fetchBlob(ctx.node, parseBlobId(cid), { expectedBytes: blobSize(ctx, 1) }))
  assert.instance(broken, UpstreamError)
  assert.match((broken as Error).message, /500.*disk on fire/)
  ctx.node.faults.set(cid, 'cut')
  assert.instance(await failure(ctx.fetcher.fetchBlob(ctx.node, parseBlobId(cid), { expectedBytes: blobSize(ctx, 1) })), UpstreamError)
})

test('a source that stops sending is a TimeoutError at the deadline', async (ctx) => {
  const cid = ctx.content.chunkIds[0]
  ctx.node.faults.set(cid, 'stall')
  assert.instance(await failure(ctx.fetcher.fetchBlob(ctx.node, parseBlobId(cid), { expectedBytes: blobSize(ctx, 0), timeoutMs: 200 })), TimeoutError)
})

test('the caller aborting ends the request with the caller\'s reason', async (ctx) => {
  const cid = ctx.content.chunkIds[0]
  ctx.node.faults.set(cid, 'stall')
  const ac = new AbortController()
  const p = ctx.fetcher.fetchBlob(ctx.node, parseBlobId(cid), { expectedBytes: blobSize(ctx, 0), signal: ac.signal })
  const reason = new Error('stop')
  setImmediate(() => { ac.abort(reason) })
  assert.is(await failure(p), reason)
})

test('an unreachable source is an UpstreamError', async (ctx) => {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  server.close()
  await once(server, 'close')
  const err = await failure(ctx.fetcher.fetchBlob({ id: 'gone', url: `http://127.0.0.1:${port}` }, parseBlobId(ctx.content.chunkIds[0])))
  assert.instance(err, UpstreamError)
})

test('have-bitmaps are fetched and checked against the manifest', async (ctx) => {
  const n = ctx.content.chunkIds.length
  const bitmap = await ctx.fetcher.fetchHave(ctx.node, ctx.content.id, n)
  assert.equal([0, 1, 2, 3].map(i => hasChunk(bitmap, i)), [true, true, false, true])
  assert.instance(await failure(ctx.fetcher.fetchHave(ctx.node, ctx.content.id, n + 1)), ProtocolError)
  const other = await makeContent({ size: 10, chunkSize: 1024, signer: await makeSigner() })
  assert.instance(await failure(ctx.fetcher.fetchHave(ctx.node, other.id, 1)), UpstreamError)
})

test('malformed have answers are refused', () => {
  const good = { content: 'x', chunks: 10, bitmap: Buffer.from(bitmapOf([0, 9], 10)).toString('base64') }
  assert.ok(hasChunk(parseHave(good, 'x', 10), 9))
  assert.not.ok(hasChunk(parseHave(good, 'x', 10), 8))
  assert.throws(() => parseHave({ ...good, content: 'y' }, 'x', 10), (e: unknown) => e instanceof ProtocolError)
  assert.throws(() => parseHave({ ...good, bitmap: Buffer.alloc(5).toString('base64') }, 'x', 10), (e: unknown) => e instanceof ProtocolError)
  assert.throws(() => parseHave(null, 'x', 10), (e: unknown) => e instanceof ProtocolError)
  assert.throws(() => parseHave({ ...good, bitmap: 42 }, 'x', 10), (e: unknown) => e instanceof ProtocolError)
})

test.run()
