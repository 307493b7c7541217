/**
 * The fetch engine against stand-in nodes over real HTTP on loopback: order,
 * integrity, retries elsewhere, bad-copy reports, giving up, backpressure.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { DecryptError, NoSourceError } from '../../../../core/errors.ts'
import { silentLogger } from '../../../../core/log.ts'
import { ChunkFetcher } from '../../../../proxy/fetch/chunk-fetcher.ts'
import { ContentReader, type Progress } from '../../../../proxy/fetch/content-reader.ts'
import { DeadlineClock } from '../../../../proxy/fetch/deadline.ts'
import { DefaultFetchEngine } from '../../../../proxy/fetch/fetch-engine.ts'
import { ManagerClient } from '../../../../proxy/resolve/manager-client.ts'
import { Resolver } from '../../../../proxy/resolve/resolver.ts'
import { Scoreboard } from '../../../../proxy/fetch/scoreboard.ts'
import {
  collect, eventually, makeContent, makeSigner, startStandInManager, startStandInNode,
  type Signer, type StandInManager, type StandInNode, type TestContent
} from '../../proxy-standins.ts'

const KiB = 1024
const CHUNK = 64 * KiB
/** 40 chunks, the last one odd-sized */
const SIZE = 39 * CHUNK + 12_345

interface Ctx {
  signer: Signer
  manager: StandInManager
  nodes: StandInNode[]
  deadlines: DeadlineClock
  fetcher: ChunkFetcher
  managerClient: ManagerClient
  scoreboard: Scoreboard
  engine: DefaultFetchEngine
}

const test = suite<Ctx>('content reader')
const logger = silentLogger()

test.before.each(async (ctx) => {
  ctx.signer = await makeSigner()
  ctx.manager = await startStandInManager(ctx.signer)
  ctx.nodes = [await startStandInNode(), await startStandInNode(), await startStandInNode()]
  ctx.deadlines = new DeadlineClock()
  ctx.fetcher = new ChunkFetcher({ deadlines: ctx.deadlines, logger })
  ctx.managerClient = new ManagerClient({ deadlines: ctx.deadlines }, { url: ctx.manager.url })
  const resolver = new Resolver({ manager: ctx.managerClient, blobs: ctx.fetcher, haves: ctx.fetcher, deadlines: ctx.deadlines, trusted: () => [ctx.signer.id], logger })
  ctx.scoreboard = new Scoreboard()
  // Hedging has its own tests; here a loaded machine must not turn a slow answer into a duplicate request.
  ctx.engine = new DefaultFetchEngine({ resolver, fetcher: ctx.fetcher, scoreboard: ctx.scoreboard, reporter: ctx.managerClient, logger }, { reader: { retryBackoffMs: 10, hedgeFactor: Infinity } })
})

test.after.each(async (ctx) => {
  await ctx.engine.close()
  await ctx.fetcher.close()
  await ctx.managerClient.close()
  ctx.deadlines.close()
  for (const n of ctx.nodes) await n.close()
  await ctx.manager.close()
})

async function publishOnAll (ctx: Ctx, size = SIZE): Promise<TestContent> {
  const content = await makeContent({ size, chunkSize: CHUNK, signer: ctx.signer, name: 'movie.mp4', type: 'video/mp4' })
  for (const n of ctx.nodes) n.hold(content)
  ctx.manager.publish(content, ctx.nodes)
  return content
}

function requestsFor (nodes: StandInNode[], cid: string): StandInNode[] {
  return nodes.filter(n => n.requests.includes(cid))
}

test('three sources: the plaintext comes back identical, in order, from all of them', async (ctx) => {
  const content = await publishOnAll(ctx)
  let last: Progress | undefined
  const opened = await ctx.engine.open(content.id, { onProgress: (p) => { last = p } })
  assert.is(opened.size, SIZE)
  assert.equal(opened.metadata, { name: 'movie.mp4', type: 'video/mp4' })
  let offset = 0
  for await (const piece of opened.body) {
    // Each piece must be exactly the next bytes: order is checked piece by piece, not just overall.
    assert.ok(Buffer.from(piece).equals(content.plaintext.subarray(offset, offset + piece.length)), `bytes at ${offset}`)
    offset += piece.length
  }
  assert.is(offset, SIZE)
  assert.is(last?.done, SIZE)
  assert.is(last?.total, SIZE)
  const used = Object.keys(last?.sources ?? {})
  assert.ok(used.length >= 2, `fetched from ${used.length} sources`)
  const requested = ctx.nodes.reduce((n, node) => n + node.requests.length, 0)
  assert.is(requested, content.chunkIds.length, 'each chunk requested once when nothing fails')
})

test('a corrupted copy is fetched elsewhere and reported to the manager', async (ctx) => {
  const content = await publishOnAll(ctx)
  const bad = content.chunkIds[0]
  const liar = ctx.nodes[1]
  liar.faults.set(bad, 'corrupt')
  // The liar looks fastest, so the first chunk certainly goes to it first.
  for (let i = 0; i < 3; i++) {
    ctx.scoreboard.recordSuccess(liar.id, { bytes: CHUNK, ttfbMs: 0.1, totalMs: 0.2 })
    for (const honest of [ctx.nodes[0], ctx.nodes[2]]) ctx.scoreboard.recordSuccess(honest.id, { bytes: CHUNK, ttfbMs: 50, totalMs: 500 })
  }
  const opened = await ctx.engine.open(content.id)
  const { bytes } = await collect(opened.body)
  assert.ok(bytes.equals(content.plaintext))
  assert.ok(liar.requests.includes(bad), 'the liar was asked')
  assert.ok(requestsFor([ctx.nodes[0], ctx.nodes[2]], bad).length >= 1, 'the chunk was fetched again from an honest node')
  await eventually(() => ctx.manager.reports.length > 0, 'bad copy reported')
  assert.is(ctx.manager.reports.length, 1)
  const report = ctx.manager.reports[0]
  assert.equal({ ...report, reason: undefined }, { content: content.id, chunk: bad, node: liar.id, reason: undefined })
  assert.match(report.reason, /match/)
})

test('a node serving corrupted copies of everything: all bytes still correct, every bad copy reported', async (ctx) => {
  const content = await publishOnAll(ctx)
  const liar = ctx.nodes[0]
  for (const cid of content.chunkIds) liar.faults.set(cid, 'corrupt')
  const opened = await ctx.engine.open(content.id)
  const { bytes } = await collect(opened.body)
  assert.ok(bytes.equals(content.plaintext))
  const lies = liar.requests.filter(c => content.chunkIds.includes(c))
  assert.ok(lies.length >= 1, 'the liar was asked at least once')
  for (const cid of lies) assert.ok(requestsFor(ctx.nodes.slice(1), cid).length >= 1, `chunk ${cid} fetched from an honest node`)
  await eventually(() => ctx.manager.reports.length === new Set(lies).size, 'every bad copy reported')
  assert.ok(ctx.manager.reports.every(r => r.node === liar.id && r.content === content.id))
})

test('a node that closes connections mid-body: still correct', async (ctx) => {
  const content = await publishOnAll(ctx)
  const flaky = ctx.nodes[2]
  for (const cid of content.chunkIds.filter((_, i) => i % 2 === 0)) flaky.faults.set(cid, 'cut')
  const opened = await ctx.engine.open(content.id)
  const { bytes } = await collect(opened.body)
  assert.ok(bytes.equals(content.plaintext))
  assert.is(ctx.manager.reports.length, 0, 'a broken transfer is not a bad copy')
})

test('a chunk held only by broken nodes fails with NoSourceError instead of hanging', async (ctx) => {
  const content = await publishOnAll(ctx)
  const doomed = content.chunkIds[5]
  ctx.nodes[0].faults.set(doomed, 'fail')
  ctx.nodes[1].faults.set(doomed, 'cut')
  ctx.nodes[2].faults.set(doomed, 'corrupt')
  const opened = await ctx.engine.open(content.id)
  let got = 0
  try {
    for await (const piece of opened.body) got += piece.length
    assert.unreachable('the read should fail')
  } catch (err) {
    assert.instance(err, NoSourceError)
    assert.match((err as Error).message, /chunk 5/)
  }
  assert.is(got, 5 * CHUNK, 'every chunk before the broken one was delivered')
  for (const n of ctx.nodes) assert.ok(n.requests.filter(c => c === doomed).length >= 2, 'each holder was tried more than once')
})

test('a chunk no source holds fails with NoSourceError at once', async (ctx) => {
  const content = await makeContent({ size: SIZE, chunkSize: CHUNK, signer: ctx.signer })
  const all = content.chunkIds.map((_, i) => i)
  for (const n of ctx.nodes) n.hold(content, all.filter(i => i !== 3))
  ctx.manager.publish(content, ctx.nodes)
  const opened = await ctx.engine.open(content.id)
  try {
    await collect(opened.body)
    assert.unreachable('the read should fail')
  } catch (err) {
    assert.instance(err, NoSourceError)
    assert.match((err as Error).message, /no source holds chunk 3/)
  }
})

test('chunks are fetched only from the nodes whose bitmaps have them', async (ctx) => {
  const content = await makeContent({ size: SIZE, chunkSize: CHUNK, signer: ctx.signer })
  const n = content.chunkIds.length
  ctx.nodes[0].hold(content, Array.from({ length: n }, (_, i) => i).filter(i => i % 2 === 0))
  ctx.nodes[1].hold(content, Array.from({ length: n }, (_, i) => i).filter(i => i % 2 === 1))
  ctx.manager.publish(content, ctx.nodes.slice(0, 2))
  const { bytes } = await collect((await ctx.engine.open(content.id)).body)
  assert.ok(bytes.equals(content.plaintext))
  assert.ok(ctx.nodes[0].requests.every(c => content.chunkIds.indexOf(c) % 2 === 0))
  assert.ok(ctx.nodes[1].requests.every(c => content.chunkIds.indexOf(c) % 2 === 1))
})

test('backpressure: a consumer that stops reading stops the fetching within the window', async (ctx) => {
  const content = await publishOnAll(ctx)
  const scoreboard = new Scoreboard()
  const resolved = await new Resolver({ manager: ctx.managerClient, blobs: ctx.fetcher, haves: ctx.fetcher, deadlines: ctx.deadlines, trusted: () => undefined, logger }).resolve(content.id)
  const window = { max: 6 }
  const reader = new ContentReader({ fetcher: ctx.fetcher, scoreboard, logger }, resolved, { window })
  const total = (): number => ctx.nodes.reduce((n, node) => n + node.requests.length, 0)
  assert.is(total(), 0, 'nothing is fetched before the first read')
  const first = await reader.next()
  assert.is(first.done, false)
  await eventually(() => reader.stats().inflight === 0, 'window filled')
  const afterOne = total()
  assert.ok(afterOne <= 1 + 6, `${afterOne} requests after reading one chunk with a window of 6`)
  assert.ok(afterOne > 1, 'it does read ahead of the consumer')
  assert.ok(reader.stats().buffered <= 6)
  // Still not reading: nothing more goes out however long we wait for the reader to settle.
  await new Promise(resolve => setImmediate(resolve))
  assert.is(total(), afterOne)
  // Reading on resumes the fetching and delivers everything.
  const rest = await collect(reader)
  assert.ok(Buffer.concat([first.value, rest.bytes]).equals(content.plaintext))
})

test('stopping a read early cancels its requests', async (ctx) => {
  const content = await publishOnAll(ctx)
  for (const n of ctx.nodes) for (const cid of content.chunkIds.slice(2)) n.faults.set(cid, 'stall')
  const opened = await ctx.engine.open(content.id)
  let pieces = 0
  for await (const _ of opened.body) {
    if (++pieces === 2) break
  }
  await eventually(() => ctx.nodes.every(n => n.open === 0), 'stalled responses closed by the proxy')
})

test('an aborted signal ends the read with its reason', async (ctx) => {
  const content = await publishOnAll(ctx)
  for (const n of ctx.nodes) for (const cid of content.chunkIds.slice(1)) n.faults.set(cid, 'stall')
  const ac = new AbortController()
  const opened = await ctx.engine.open(content.id, { signal: ac.signal })
  const first = await opened.body.next()
  assert.is(first.done, false)
  const pending = opened.body.next()
  const reason = new Error('viewer left')
  ac.abort(reason)
  try {
    await pending
    assert.unreachable('the read should fail')
  } catch (err) {
    assert.is(err, reason)
  }
  await eventually(() => ctx.nodes.every(n => n.open === 0), 'stalled responses closed')
})

test('a read can start at a later chunk', async (ctx) => {
  const content = await publishOnAll(ctx)
  const opened = await ctx.engine.open(content.id, { startChunk: 30 })
  assert.is(opened.size, SIZE - 30 * CHUNK)
  const { bytes } = await collect(opened.body)
  assert.ok(bytes.equals(content.plaintext.subarray(30 * CHUNK)))
  assert.ok(ctx.nodes.every(n => n.requests.every(c => content.chunkIds.indexOf(c) >= 30)))
})

test('an empty content reads as nothing, without asking any node', async (ctx) => {
  const content = await makeContent({ size: 0, chunkSize: CHUNK, signer: ctx.signer })
  ctx.manager.publish(content, [])
  const opened = await ctx.engine.open(content.id)
  assert.is(opened.size, 0)
  assert.is((await collect(opened.body)).bytes.length, 0)
})

test('a wrong key from a capability is refused before any chunk is fetched', async (ctx) => {
  const content = await publishOnAll(ctx)
  try {
    await ctx.engine.open(content.id, { key: new Uint8Array(32).fill(7) })
    assert.unreachable('opening should fail')
  } catch (err) {
    assert.instance(err, DecryptError)
  }
  assert.ok(ctx.nodes.every(n => n.requests.length === 0))
})

test.run()
