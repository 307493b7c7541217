/**
 * Receive buffers reused from chunk to chunk, and the lean client that reads
 * into them: no buffer is handed out while still in use, every one comes back
 * whatever happened to its chunk (verified, corrupt, cut, aborted, lost to a
 * duplicate), and a copy that fails its hash never reaches the consumer.
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { HashMismatchError, NoSourceError } from '../../../../core/errors.ts'
import { chunkCid } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import { BlobPool, PoolMisuseError, SharedBlob } from '../../../../proxy/fetch/blob-pool.ts'
import { ChunkFetcher } from '../../../../proxy/fetch/chunk-fetcher.ts'
import { DeadlineClock } from '../../../../proxy/fetch/deadline.ts'
import { DefaultFetchEngine } from '../../../../proxy/fetch/fetch-engine.ts'
import { Scoreboard } from '../../../../proxy/fetch/scoreboard.ts'
import { ManagerClient } from '../../../../proxy/resolve/manager-client.ts'
import { Resolver } from '../../../../proxy/resolve/resolver.ts'
import { ChunkCache } from '../../../../proxy/state/chunk-cache.ts'
import { freeWhenWritten } from '../../../../proxy/http/content-route.ts'
import { collect, eventually, makeContent, makeSigner, startStandInManager, startStandInNode } from '../../proxy-standins.ts'

const logger = silentLogger()

const pool = suite('blob pool')

pool('a buffer is never handed out while lent, and one given back is reused', () => {
  const p = new BlobPool()
  const a = p.take(1000)
  const b = p.take(1000)
  assert.is.not(a, b)
  assert.is(a.length, 1000)
  p.give(a)
  const c = p.take(1000)
  assert.is(c, a, 'the free buffer is reused')
  const d = p.take(1000)
  assert.ok(d !== b && d !== c, 'a lent buffer is never handed out again')
  assert.equal(p.stats().lent, 3)
})

pool('buffers of another size are not mixed up', () => {
  const p = new BlobPool()
  const a = p.take(1000)
  p.give(a)
  const b = p.take(500)
  assert.is(b.length, 500)
  assert.is.not(b.buffer, a.buffer)
})

pool('giving a buffer back twice, or one it never lent, is refused', () => {
  const p = new BlobPool()
  const a = p.take(64)
  p.give(a)
  assert.throws(() => { p.give(a) }, (err: unknown) => err instanceof PoolMisuseError)
  assert.throws(() => { p.give(Buffer.alloc(64)) }, (err: unknown) => err instanceof PoolMisuseError)
})

pool('idle buffers beyond the limit are left to the collector', () => {
  const p = new BlobPool({ maxIdleBytes: 2048 })
  const bufs = [p.take(1024), p.take(1024), p.take(1024)]
  for (const b of bufs) p.give(b)
  assert.is(p.stats().idleBytes, 2048)
  assert.is(p.stats().lent, 0)
})

pool('a shared blob is freed once, when its last holder lets go', () => {
  let freed = 0
  const shared = new SharedBlob(() => { freed++ })
  const cacheDone = shared.share()
  shared.drop()
  assert.is(freed, 0, 'the cache still holds it')
  cacheDone()
  cacheDone()
  assert.is(freed, 1)
  assert.throws(() => { shared.drop() }, (err: unknown) => err instanceof PoolMisuseError)
})

pool('a written chunk\'s memory is freed only when the piece owns all of it and the write succeeded', () => {
  const small = Buffer.from('a few bytes from the shared slab')
  assert.is(freeWhenWritten(small), undefined, 'slab memory is shared with other buffers')
  const big = Buffer.from(new ArrayBuffer(1024 * 1024))
  assert.is(freeWhenWritten(big.subarray(16)), undefined, 'a view into a larger buffer is not the owner')
  const free = freeWhenWritten(big)
  assert.ok(free !== undefined)
  free(new Error('write failed'))
  assert.not.ok(big.buffer.detached, 'a failed write may still hold the bytes')
  free(null)
  assert.ok(big.buffer.detached)
  assert.is(big.length, 0)
})

pool.run()

/** A node stand-in that counts its connections and can drop a kept-alive one when its next request comes. */
interface CountingNode { server: Server, url: string, blob: Buffer, sockets: Set<Socket>, connections: number, dropNextReuse: boolean, close: () => Promise<void> }

async function countingNode (blob: Buffer): Promise<CountingNode> {
  const served = new WeakMap<Socket, number>()
  const node: CountingNode = { server: undefined as unknown as Server, url: '', blob, sockets: new Set(), connections: 0, dropNextReuse: false, close: async () => {} }
  node.server = createServer((req, res) => {
    const n = (served.get(req.socket) ?? 0) + 1
    served.set(req.socket, n)
    if (n > 1 && node.dropNextReuse) {
      // As if the node's keep-alive timer fired just as the request was on its way.
      node.dropNextReuse = false
      req.socket.destroy()
      return
    }
    res.writeHead(200, { 'content-length': blob.length })
    res.end(blob)
  })
  node.server.on('connection', (s: Socket) => {
    node.connections++
    node.sockets.add(s)
    s.once('close', () => { node.sockets.delete(s) })
  })
  node.server.listen(0, '127.0.0.1')
  await once(node.server, 'listening')
  node.url = `http://127.0.0.1:${(node.server.address() as AddressInfo).port}`
  node.close = async () => {
    node.server.closeAllConnections()
    node.server.close()
    await once(node.server, 'close')
  }
  return node
}

interface LeanCtx { node: CountingNode, pool: BlobPool, deadlines: DeadlineClock, fetcher: ChunkFetcher }
const lean = suite<LeanCtx>('lean chunk client')

lean.before.each(async (ctx) => {
  ctx.node = await countingNode(Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) & 0xff)))
  ctx.pool = new BlobPool()
  ctx.deadlines = new DeadlineClock({ tickMs: 20 })
  ctx.fetcher = new ChunkFetcher({ deadlines: ctx.deadlines, logger, pool: ctx.pool }, { connections: 2 })
})

lean.after.each(async (ctx) => {
  await ctx.fetcher.close()
  ctx.deadlines.close()
  await ctx.node.close()
})

lean('requests one after another share one kept-alive connection', async (ctx) => {
  const cid = chunkCid(ctx.node.blob)
  for (let i = 0; i < 3; i++) {
    const got = await ctx.fetcher.fetchBlob({ id: 'n', url: ctx.node.url }, cid, { expectedBytes: ctx.node.blob.length })
    assert.ok(Buffer.from(got.bytes).equals(ctx.node.blob))
    got.release?.()
  }
  assert.is(ctx.node.connections, 1)
  assert.is(ctx.pool.stats().lent, 0)
  assert.is(ctx.pool.stats().allocated, 1, 'one buffer served all three')
})

lean('requests beyond the connection limit wait for a free connection', async (ctx) => {
  const cid = chunkCid(ctx.node.blob)
  const all = await Promise.all(Array.from({ length: 6 }, async () => await ctx.fetcher.fetchBlob({ id: 'n', url: ctx.node.url }, cid, { expectedBytes: ctx.node.blob.length })))
  for (const got of all) {
    assert.ok(Buffer.from(got.bytes).equals(ctx.node.blob))
    got.release?.()
  }
  assert.ok(ctx.node.connections <= 2, `${ctx.node.connections} connections for a limit of 2`)
})

lean('a kept-alive connection the node closed is replaced and the request still succeeds', async (ctx) => {
  const cid = chunkCid(ctx.node.blob)
  ;(await ctx.fetcher.fetchBlob({ id: 'n', url: ctx.node.url }, cid, { expectedBytes: ctx.node.blob.length })).release?.()
  ctx.node.dropNextReuse = true
  const got = await ctx.fetcher.fetchBlob({ id: 'n', url: ctx.node.url }, cid, { expectedBytes: ctx.node.blob.length })
  assert.ok(Buffer.from(got.bytes).equals(ctx.node.blob))
  got.release?.()
  assert.is(ctx.node.connections, 2)
})

lean('a copy failing its hash is refused and its buffer comes back for the next chunk', async (ctx) => {
  const good = chunkCid(ctx.node.blob)
  const other = Buffer.from(ctx.node.blob)
  other[other.length >> 1] ^= 0xff
  try {
    await ctx.fetcher.fetchBlob({ id: 'n', url: ctx.node.url }, chunkCid(other), { expectedBytes: ctx.node.blob.length })
    assert.unreachable('a corrupt copy must be refused')
  } catch (err) {
    assert.instance(err, HashMismatchError)
  }
  assert.is(ctx.pool.stats().lent, 0)
  const got = await ctx.fetcher.fetchBlob({ id: 'n', url: ctx.node.url }, good, { expectedBytes: ctx.node.blob.length })
  assert.ok(Buffer.from(got.bytes).equals(ctx.node.blob), 'the reused buffer holds the new chunk only')
  assert.is(ctx.pool.stats().reused, 1)
  got.release?.()
})

lean('an aborted request gives its buffer back and its connection is not reused', async (ctx) => {
  const cid = chunkCid(ctx.node.blob)
  const ac = new AbortController()
  const p = ctx.fetcher.fetchBlob({ id: 'n', url: ctx.node.url }, cid, { expectedBytes: ctx.node.blob.length, signal: ac.signal })
  ac.abort(new Error('viewer left'))
  try {
    await p
    assert.unreachable('the request was aborted')
  } catch (err) {
    assert.match((err as Error).message, /viewer left/)
  }
  assert.is(ctx.pool.stats().lent, 0)
  const got = await ctx.fetcher.fetchBlob({ id: 'n', url: ctx.node.url }, cid, { expectedBytes: ctx.node.blob.length })
  assert.ok(Buffer.from(got.bytes).equals(ctx.node.blob))
  got.release?.()
})

lean.run()

interface ReadCtx { dir: string }
const reads = suite<ReadCtx>('pooled reads')

reads.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'blob-reuse-'))
})

reads.after.each(async (ctx) => {
  await rm(ctx.dir, { recursive: true, force: true })
})

reads('through the cache and a lying node, every buffer comes back and no bad byte is handed out', async (ctx) => {
  const signer = await makeSigner()
  const manager = await startStandInManager(signer)
  const nodes = [await startStandInNode(), await startStandInNode()]
  const deadlines = new DeadlineClock()
  const blobPool = new BlobPool()
  const fetcher = new ChunkFetcher({ deadlines, logger, pool: blobPool })
  const managerClient = new ManagerClient({ deadlines }, { url: manager.url })
  const cache = new ChunkCache({ dir: ctx.dir, maxBytes: 1e9, logger })
  await cache.open()
  const resolver = new Resolver({ manager: managerClient, blobs: fetcher, haves: fetcher, deadlines, trusted: () => [signer.id], logger })
  const engine = new DefaultFetchEngine({ resolver, fetcher, scoreboard: new Scoreboard(), cache, logger }, { reader: { retryBackoffMs: 10 } })
  try {
    const content = await makeContent({ size: 20 * 32 * 1024 + 999, chunkSize: 32 * 1024, signer })
    for (const n of nodes) n.hold(content)
    for (const cid of content.chunkIds) nodes[1].faults.set(cid, 'corrupt')
    manager.publish(content, nodes)
    const got = await collect((await engine.open(content.id)).body)
    assert.ok(got.bytes.equals(content.plaintext))
    await engine.close()
    await cache.close()
    await eventually(() => blobPool.stats().lent === 0, 'every receive buffer came back to the pool')
  } finally {
    await engine.close()
    await fetcher.close()
    await managerClient.close()
    deadlines.close()
    for (const n of nodes) await n.close()
    await manager.close()
  }
})

reads('a single holder serving a corrupt chunk: the read fails and hands out nothing from that chunk on', async () => {
  const signer = await makeSigner()
  const manager = await startStandInManager(signer)
  const node = await startStandInNode()
  const deadlines = new DeadlineClock()
  const fetcher = new ChunkFetcher({ deadlines, logger })
  const managerClient = new ManagerClient({ deadlines }, { url: manager.url })
  const resolver = new Resolver({ manager: managerClient, blobs: fetcher, haves: fetcher, deadlines, trusted: () => [signer.id], logger })
  const engine = new DefaultFetchEngine({ resolver, fetcher, scoreboard: new Scoreboard(), logger }, { reader: { retryBackoffMs: 5, maxRefreshes: 1, refreshGapMs: 5 } })
  try {
    const content = await makeContent({ size: 4 * 32 * 1024, chunkSize: 32 * 1024, signer })
    node.hold(content)
    node.faults.set(content.chunkIds[0], 'corrupt')
    manager.publish(content, [node])
    const opened = await engine.open(content.id)
    let handedOut = 0
    try {
      for await (const piece of opened.body) handedOut += piece.length
      assert.unreachable('the read must fail')
    } catch (err) {
      assert.instance(err, NoSourceError)
    }
    assert.is(handedOut, 0)
  } finally {
    await engine.close()
    await fetcher.close()
    await managerClient.close()
    deadlines.close()
    await node.close()
    await manager.close()
  }
})

reads.run()
