/**
 * The chunk cache wired into the fetch engine, against stand-in nodes that
 * count their requests: a replay or a seek back asks no node for anything,
 * works with the nodes (and the manager) stopped, a chunk lost from the cache
 * is fetched again, and no plaintext byte reaches the disk.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { matchesCid, parseBlobId } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import { ChunkCache } from '../../../../proxy/state/chunk-cache.ts'
import { ChunkFetcher } from '../../../../proxy/fetch/chunk-fetcher.ts'
import { DeadlineClock } from '../../../../proxy/fetch/deadline.ts'
import { DefaultFetchEngine } from '../../../../proxy/fetch/fetch-engine.ts'
import { ManagerClient } from '../../../../proxy/resolve/manager-client.ts'
import { Resolver } from '../../../../proxy/resolve/resolver.ts'
import { Scoreboard } from '../../../../proxy/fetch/scoreboard.ts'
import {
  collect, eventually, makeContent, makeSigner, startStandInManager, startStandInNode,
  type Signer, type StandInManager, type StandInNode, type TestContent
} from '../../proxy-standins.ts'

const CHUNK = 32 * 1024
const SIZE = 24 * CHUNK + 999
const logger = silentLogger()

interface Engine {
  engine: DefaultFetchEngine
  cache: ChunkCache
  close: () => Promise<void>
}

interface Ctx {
  dir: string
  signer: Signer
  manager: StandInManager
  nodes: StandInNode[]
  content: TestContent
  /** engines made by a test, closed after it */
  engines: Engine[]
}

const test = suite<Ctx>('chunk cache in the fetch engine')

test.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'cdn-proxy-cache-'))
  ctx.signer = await makeSigner()
  ctx.manager = await startStandInManager(ctx.signer)
  ctx.nodes = [await startStandInNode(), await startStandInNode()]
  ctx.content = await makeContent({ size: SIZE, chunkSize: CHUNK, signer: ctx.signer, name: 'film.webm', type: 'video/webm' })
  for (const n of ctx.nodes) n.hold(ctx.content)
  ctx.manager.publish(ctx.content, ctx.nodes)
  ctx.engines = []
})

test.after.each(async (ctx) => {
  for (const e of ctx.engines) await e.close()
  for (const n of ctx.nodes) await n.close()
  await ctx.manager.close()
  await rm(ctx.dir, { recursive: true, force: true })
})

/** A fresh engine (nothing resolved yet) over the cache directory, as a restarted proxy would be. */
async function engineOver (ctx: Ctx, maxBytes = 64 * 1024 * 1024): Promise<Engine> {
  const deadlines = new DeadlineClock({ tickMs: 20 })
  const fetcher = new ChunkFetcher({ deadlines, logger })
  const client = new ManagerClient({ deadlines }, { url: ctx.manager.url, timeoutMs: 2000 })
  const cache = new ChunkCache({ dir: join(ctx.dir, 'cache'), maxBytes, logger })
  await cache.open()
  const resolver = new Resolver({ manager: client, blobs: fetcher, haves: fetcher, deadlines, cache, trusted: () => [ctx.signer.id], logger }, { haveTimeoutMs: 1000 })
  const engine = new DefaultFetchEngine({ resolver, fetcher, scoreboard: new Scoreboard(), cache, reporter: client, logger }, { reader: { retryBackoffMs: 10 } })
  const e: Engine = {
    engine,
    cache,
    close: async () => {
      await engine.close()
      resolver.close()
      await cache.close()
      await fetcher.close()
      await client.close()
      deadlines.close()
    }
  }
  ctx.engines.push(e)
  return e
}

function requests (ctx: Ctx): number {
  return ctx.nodes.reduce((n, node) => n + node.requests.length, 0)
}

function forget (ctx: Ctx): void {
  for (const n of ctx.nodes) n.requests.length = 0
}

test('a replay reads every chunk from the cache and asks no node for any', async (ctx) => {
  const { engine, cache } = await engineOver(ctx)
  const first = await collect((await engine.open(ctx.content.id)).body)
  assert.ok(first.bytes.equals(ctx.content.plaintext))
  assert.is(requests(ctx), ctx.content.chunkIds.length)
  await cache.close() // waits for the writes, so the replay below finds every chunk on disk
  const again = await engineOver(ctx)
  forget(ctx)
  let sources: Record<string, number> = {}
  const replay = await collect((await again.engine.open(ctx.content.id, { onProgress: (p) => { sources = p.sources } })).body)
  assert.ok(replay.bytes.equals(ctx.content.plaintext))
  assert.is(requests(ctx), 0, 'no chunk request reached a node')
  assert.equal(Object.keys(sources), ['cache'])
  assert.ok(again.cache.stats().hits >= ctx.content.chunkIds.length)
})

test('with the nodes and the manager stopped, a capability link replays from the cache', async (ctx) => {
  const { engine, cache } = await engineOver(ctx)
  await collect((await engine.open(ctx.content.id)).body)
  await cache.close()
  for (const n of ctx.nodes) await n.close()
  await ctx.manager.close()
  const offline = await engineOver(ctx)
  const opened = await offline.engine.open(ctx.content.id, { key: ctx.content.key })
  assert.equal(opened.metadata, { name: 'film.webm', type: 'video/webm' })
  const { bytes } = await collect(opened.body)
  assert.ok(bytes.equals(ctx.content.plaintext))
  // A seek into the middle, too.
  const seek = await collect((await offline.engine.open(ctx.content.id, { key: ctx.content.key, startChunk: 10, endChunk: 12 })).body)
  assert.ok(seek.bytes.equals(ctx.content.plaintext.subarray(10 * CHUNK, 12 * CHUNK)))
})

test('a seek back within the same engine costs no request', async (ctx) => {
  const { engine } = await engineOver(ctx)
  await collect((await engine.open(ctx.content.id, { startChunk: 5 })).body)
  const before = requests(ctx)
  const back = await collect((await engine.open(ctx.content.id, { startChunk: 8, endChunk: 12 })).body)
  assert.ok(back.bytes.equals(ctx.content.plaintext.subarray(8 * CHUNK, 12 * CHUNK)))
  assert.is(requests(ctx), before)
  // Chunks never read come from the nodes; the cached ones do not.
  forget(ctx)
  const whole = await collect((await engine.open(ctx.content.id)).body)
  assert.ok(whole.bytes.equals(ctx.content.plaintext))
  const asked = ctx.nodes.flatMap(n => n.requests).map(c => ctx.content.chunkIds.indexOf(c)).sort((a, b) => a - b)
  assert.equal(asked, [0, 1, 2, 3, 4])
})

test('a chunk lost from the cache is fetched from a node again, even when the content looked cached whole', async (ctx) => {
  const { engine, cache } = await engineOver(ctx)
  await collect((await engine.open(ctx.content.id)).body)
  await cache.close()
  const again = await engineOver(ctx)
  // Lost after the cache looked at its directory: resolving finds every chunk cached and asks no node.
  const lost = ctx.content.chunkIds[7]
  await rm(join(ctx.dir, 'cache', lost))
  forget(ctx)
  const { bytes } = await collect((await again.engine.open(ctx.content.id)).body)
  assert.ok(bytes.equals(ctx.content.plaintext))
  assert.equal(ctx.nodes.flatMap(n => n.requests), [lost])
})

test('a cache smaller than the content still serves it whole, and stays within its bound', async (ctx) => {
  const bound = 6 * (CHUNK + 16)
  const { engine, cache } = await engineOver(ctx, bound)
  for (let i = 0; i < 2; i++) {
    const { bytes } = await collect((await engine.open(ctx.content.id)).body)
    assert.ok(bytes.equals(ctx.content.plaintext))
  }
  await cache.close()
  assert.ok(cache.stats().bytes <= bound)
  const files = await readdir(join(ctx.dir, 'cache'))
  assert.ok(files.length <= 6)
})

test('while a range is being read, the chunks after it are fetched into the cache, so the next range costs no request', async (ctx) => {
  const { engine, cache } = await engineOver(ctx)
  const body = (await engine.open(ctx.content.id, { startChunk: 0, endChunk: 4 })).body
  const got: Uint8Array[] = []
  for (let i = 0; i < 3; i++) {
    const piece = await body.next()
    assert.is(piece.done, false)
    got.push(piece.value as Uint8Array)
  }
  // The player is still reading (one chunk left): the read-ahead lands in the cache meanwhile.
  const next = ctx.content.chunkIds.slice(4, 8)
  await eventually(() => next.every(c => cache.has(parseBlobId(c))), 'the next chunks cached')
  const rest = await collect(body)
  assert.ok(Buffer.concat([...got, rest.bytes]).equals(ctx.content.plaintext.subarray(0, 4 * CHUNK)))
  forget(ctx)
  const range = await collect((await engine.open(ctx.content.id, { startChunk: 4, endChunk: 8 })).body)
  assert.ok(range.bytes.equals(ctx.content.plaintext.subarray(4 * CHUNK, 8 * CHUNK)))
  // Whatever went to the nodes now is this range's own read-ahead, never a chunk of it.
  assert.ok(ctx.nodes.flatMap(n => n.requests).every(c => ctx.content.chunkIds.indexOf(c) >= 8))
})

test('a reader that stops reading stops its read-ahead too', async (ctx) => {
  const { engine } = await engineOver(ctx)
  for (const n of ctx.nodes) for (const c of ctx.content.chunkIds.slice(2)) n.faults.set(c, 'stall')
  const body = (await engine.open(ctx.content.id, { startChunk: 0, endChunk: 2 })).body
  await body.next()
  await eventually(() => ctx.nodes.some(n => n.requests.includes(ctx.content.chunkIds[2])), 'read-ahead requested')
  await body.return?.()
  await eventually(() => ctx.nodes.every(n => n.open === 0), 'read-ahead requests closed')
})

test('only ciphertext is written: every cached file hashes to its name and holds no plaintext', async (ctx) => {
  const { engine, cache } = await engineOver(ctx)
  await collect((await engine.open(ctx.content.id)).body)
  await cache.close()
  const files = await readdir(join(ctx.dir, 'cache'))
  assert.is(files.length, ctx.content.chunkIds.length + 1, 'the chunks and the manifest')
  for (const name of files) {
    const bytes = await readFile(join(ctx.dir, 'cache', name))
    assert.ok(matchesCid(parseBlobId(name), bytes), `${name} is the verified blob`)
    for (let i = 0; i < ctx.content.chunkIds.length; i++) {
      const probe = ctx.content.plaintext.subarray(i * CHUNK, i * CHUNK + 64)
      assert.is(bytes.indexOf(probe), -1, `no plaintext of chunk ${i} in ${name}`)
    }
  }
})

test('stat resolves size and metadata without reading a chunk; snapshot shows sources and cache use', async (ctx) => {
  const { engine } = await engineOver(ctx)
  const stat = await engine.stat(ctx.content.id)
  assert.is(stat.id, ctx.content.id)
  assert.is(stat.size, SIZE)
  assert.equal(stat.metadata, { name: 'film.webm', type: 'video/webm' })
  assert.is(stat.manifest.chunks.length, ctx.content.chunkIds.length)
  assert.is(requests(ctx), 0)
  await collect((await engine.open(ctx.content.id)).body)
  const snap = engine.snapshot()
  const urls = new Map(ctx.nodes.map(n => [n.id, n.url]))
  assert.is(snap.sources.length, 2)
  for (const s of snap.sources) {
    assert.is(s.http, urls.get(s.source))
    assert.ok(s.bytes > 0 && s.bytesPerSecond > 0 && s.rttMs >= 0)
    assert.is(s.inFlight, 0)
  }
  assert.is(snap.sources.reduce((n, s) => n + s.bytes, 0), ctx.content.chunkIds.reduce((n, c) => n + (ctx.content.blobs.get(c)?.length ?? 0), 0))
  assert.ok(snap.cache != null && snap.cache.maxBytes === 64 * 1024 * 1024)
  assert.is(snap.memory.bytes, 0, 'a finished read holds no memory')
})

test.run()
