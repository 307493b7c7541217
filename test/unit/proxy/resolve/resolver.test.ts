import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { CID } from 'multiformats/cid'
import {
  BadInputError, ForbiddenError, HashMismatchError, NoSourceError, NotFoundError, SignatureError, TimeoutError, UpstreamError
} from '../../../../core/errors.ts'
import { silentLogger } from '../../../../core/log.ts'
import { ChunkFetcher } from '../../../../proxy/fetch/chunk-fetcher.ts'
import { DeadlineClock } from '../../../../proxy/fetch/deadline.ts'
import { hasChunk } from '../../../../core/data-plane-wire.ts'
import { ManagerClient, type ManagerApi } from '../../../../proxy/resolve/manager-client.ts'
import { Resolver, type ProviderFinder, type ResolverComponents, type ResolverInit } from '../../../../proxy/resolve/resolver.ts'
import type { SourceAddress } from '../../../../proxy/resolve/sources.ts'
import type { BlobCache } from '../../../../proxy/state/chunk-cache.ts'
import {
  makeContent, makeSigner, startStandInManager, startStandInNode,
  type Signer, type StandInManager, type StandInNode, type TestContent
} from '../../proxy-standins.ts'

interface Ctx {
  signer: Signer
  manager: StandInManager
  nodes: StandInNode[]
  content: TestContent
  deadlines: DeadlineClock
  fetcher: ChunkFetcher
  client: ManagerClient
}

const test = suite<Ctx>('resolver and manager client')
const logger = silentLogger()

test.before.each(async (ctx) => {
  ctx.signer = await makeSigner()
  ctx.manager = await startStandInManager(ctx.signer)
  ctx.nodes = [await startStandInNode(), await startStandInNode(), await startStandInNode()]
  ctx.content = await makeContent({ size: 10_000, chunkSize: 1024, signer: ctx.signer, name: 'notes.txt', type: 'text/plain' })
  ctx.deadlines = new DeadlineClock({ tickMs: 20 })
  ctx.fetcher = new ChunkFetcher({ deadlines: ctx.deadlines, logger })
  ctx.client = new ManagerClient({ deadlines: ctx.deadlines }, { url: ctx.manager.url })
})

test.after.each(async (ctx) => {
  await ctx.fetcher.close()
  await ctx.client.close()
  ctx.deadlines.close()
  for (const n of ctx.nodes) await n.close()
  await ctx.manager.close()
})

function resolver (ctx: Ctx, parts: Partial<ResolverComponents> = {}, init: ResolverInit = {}): Resolver {
  return new Resolver({ manager: ctx.client, blobs: ctx.fetcher, haves: ctx.fetcher, deadlines: ctx.deadlines, trusted: () => [ctx.signer.id], logger, ...parts }, init)
}

/** A DHT stand-in: yields the given providers, then (optionally) hangs until the search is cancelled, as a slow DHT does. */
function providers (list: SourceAddress[], hang = false): ProviderFinder & { asked: number } {
  const finder = {
    asked: 0,
    async * findProviders (_cid: CID, options: { signal: AbortSignal }): AsyncIterable<SourceAddress> {
      finder.asked++
      for (const p of list) yield p
      if (hang) {
        await new Promise((resolve) => { options.signal.addEventListener('abort', resolve, { once: true }) })
        throw options.signal.reason
      }
    }
  }
  return finder
}

async function failure (p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (err) {
    return err
  }
  throw new Error('expected a failure')
}

test('through the manager: checked manifest, key, metadata, and the holders with their bitmaps', async (ctx) => {
  ctx.nodes[0].hold(ctx.content)
  ctx.nodes[1].hold(ctx.content, [0, 2, 4])
  // The third holder lost the content: its /have is 404, so it is left out.
  ctx.manager.publish(ctx.content, ctx.nodes)
  const r = await resolver(ctx).resolve(ctx.content.id)
  assert.is(r.id, ctx.content.id)
  assert.equal(r.manifest, ctx.content.manifest)
  assert.ok(Buffer.from(r.key).equals(Buffer.from(ctx.content.key)))
  assert.equal(r.metadata, { name: 'notes.txt', type: 'text/plain' })
  assert.ok(r.viaManager)
  assert.equal(r.sources.map(s => s.id).sort(), [ctx.nodes[0].id, ctx.nodes[1].id].sort())
  const partial = r.sources.find(s => s.id === ctx.nodes[1].id)
  assert.equal([0, 1, 2, 3, 4].map(i => hasChunk(partial?.have ?? new Uint8Array(), i)), [true, false, true, false, true])
})

test('DHT providers are added to the manager\'s holders, once each', async (ctx) => {
  for (const n of ctx.nodes) n.hold(ctx.content)
  ctx.manager.publish(ctx.content, [ctx.nodes[0]])
  const dht = providers([ctx.nodes[1], ctx.nodes[2], ctx.nodes[0]])
  const r = await resolver(ctx, { providers: dht }).resolve(ctx.content.id)
  assert.is(dht.asked, 1)
  assert.equal(r.sources.map(s => s.id).sort(), ctx.nodes.map(n => n.id).sort())
})

test('a slow DHT does not hold up a resolution the manager already answered', async (ctx) => {
  ctx.nodes[0].hold(ctx.content)
  ctx.manager.publish(ctx.content, [ctx.nodes[0]])
  const r = await resolver(ctx, { providers: providers([], true) }, { providerTimeoutMs: 60_000, providerGraceMs: 50 }).resolve(ctx.content.id)
  assert.equal(r.sources.map(s => s.id), [ctx.nodes[0].id])
})

test('a holder that never answers its have-bitmap is left out instead of holding everything up', async (ctx) => {
  for (const n of ctx.nodes) n.hold(ctx.content)
  ctx.nodes[2].stallHave = true
  ctx.manager.publish(ctx.content, ctx.nodes)
  // The per-source timeout is far beyond any test's patience: only the grace after the first answer can end this.
  const r = await resolver(ctx, {}, { haveTimeoutMs: 600_000, timeoutMs: 600_000, haveGraceMs: 50 }).resolve(ctx.content.id)
  assert.equal(r.sources.map(s => s.id).sort(), [ctx.nodes[0].id, ctx.nodes[1].id].sort())
})

test('with a capability and no manager, the manifest comes from a provider', async (ctx) => {
  ctx.nodes[1].hold(ctx.content)
  ctx.nodes[2].hold(ctx.content)
  // The first provider has nothing: the manifest is taken from the next.
  const r = await resolver(ctx, { manager: undefined, providers: providers([ctx.nodes[0], ctx.nodes[1], ctx.nodes[2]]) })
    .resolve(ctx.content.id, { key: ctx.content.key })
  assert.equal(r.manifest, ctx.content.manifest)
  assert.equal(r.metadata, { name: 'notes.txt', type: 'text/plain' })
  assert.not.ok(r.viaManager)
  assert.equal(r.sources.map(s => s.id).sort(), [ctx.nodes[1].id, ctx.nodes[2].id].sort())
})

test('with a capability, a manager that refuses (private content) is only a hint', async (ctx) => {
  ctx.nodes[0].hold(ctx.content)
  ctx.manager.publish(ctx.content, [ctx.nodes[0]], { private: true })
  const plain = resolver(ctx, { providers: providers([ctx.nodes[0]]) })
  assert.instance(await failure(plain.resolve(ctx.content.id)), ForbiddenError)
  const r = await plain.resolve(ctx.content.id, { key: ctx.content.key })
  assert.equal(r.sources.map(s => s.id), [ctx.nodes[0].id])
})

test('without a manager or a key there is nothing to resolve with', async (ctx) => {
  const err = await failure(resolver(ctx, { manager: undefined, providers: providers([]) }).resolve(ctx.content.id))
  assert.instance(err, BadInputError)
})

test('a capability nobody provides is not found', async (ctx) => {
  const err = await failure(resolver(ctx, { manager: undefined, providers: providers([]) }).resolve(ctx.content.id, { key: ctx.content.key }))
  assert.instance(err, NotFoundError)
})

test('a manifest signed by someone else than the trusted manager is refused', async (ctx) => {
  const stranger = await makeSigner()
  const forged = await makeContent({ size: 100, chunkSize: 1024, signer: stranger })
  ctx.nodes[0].hold(forged)
  ctx.manager.publish(forged, [ctx.nodes[0]])
  assert.instance(await failure(resolver(ctx).resolve(forged.id)), SignatureError)
})

test('a manager answering with another content\'s manifest is caught', async (ctx) => {
  const fake: ManagerApi = {
    resolve: async (id) => ({ id, manifest: ctx.content.manifestBytes, key: ctx.content.key, holders: [ctx.nodes[0]] })
  }
  const other = await makeContent({ size: 100, chunkSize: 1024, signer: ctx.signer })
  assert.instance(await failure(resolver(ctx, { manager: fake }).resolve(other.id)), HashMismatchError)
})

test('unknown and malformed ids', async (ctx) => {
  const r = resolver(ctx)
  const unknown = await failure(r.resolve(ctx.content.id))
  assert.instance(unknown, NotFoundError)
  assert.match((unknown as Error).message, /unknown content/, 'the manager\'s own message')
  assert.instance(await failure(r.resolve('not-a-cid')), BadInputError)
  assert.instance(await failure(r.resolve(ctx.content.chunkIds[0])), BadInputError, 'a chunk id is not a content id')
})

test('when no holder answers, NoSourceError', async (ctx) => {
  ctx.manager.publish(ctx.content, ctx.nodes)
  const err = await failure(resolver(ctx).resolve(ctx.content.id))
  assert.instance(err, NoSourceError)
})

test('resolutions are cached and shared, and can be invalidated', async (ctx) => {
  ctx.nodes[0].hold(ctx.content)
  ctx.manager.publish(ctx.content, [ctx.nodes[0]])
  const r = resolver(ctx)
  const [a, b] = await Promise.all([r.resolve(ctx.content.id), r.resolve(ctx.content.id)])
  assert.is(a, b)
  assert.is(ctx.manager.resolves.get(ctx.content.id), 1, 'concurrent resolutions share one call')
  await r.resolve(ctx.content.id)
  assert.is(ctx.manager.resolves.get(ctx.content.id), 1, 'a recent resolution is reused')
  r.invalidate(ctx.content.id)
  await r.resolve(ctx.content.id)
  assert.is(ctx.manager.resolves.get(ctx.content.id), 2)
})

/** A disk cache stand-in holding the blobs named in `held`. */
function cacheOf (ctx: Ctx, held: Set<string>): BlobCache {
  return {
    has: (cid) => held.has(cid.toString()),
    get: async (cid) => held.has(cid.toString()) ? (cid.toString() === ctx.content.id ? ctx.content.manifestBytes : ctx.content.blobs.get(cid.toString())) : undefined,
    store: (_cid, _bytes, done) => { done?.() }
  }
}

test('a content resolved before and cached whole is answered from memory with the manager and every node stopped', async (ctx) => {
  ctx.nodes[0].hold(ctx.content)
  ctx.manager.publish(ctx.content, [ctx.nodes[0]])
  const held = new Set([ctx.content.id, ...ctx.content.chunkIds])
  // Resolutions with their sources last 1 ms here: only the replay path can answer the second time.
  const r = resolver(ctx, { cache: cacheOf(ctx, held) }, { cacheTtlMs: 1 })
  const first = await r.resolve(ctx.content.id)
  assert.is(ctx.manager.resolves.get(ctx.content.id), 1)
  await ctx.manager.close()
  for (const n of ctx.nodes) await n.close()
  await new Promise(resolve => setTimeout(resolve, 20))
  r.invalidate(ctx.content.id)
  const again = await r.resolve(ctx.content.id)
  assert.equal(again.manifest, first.manifest)
  assert.ok(Buffer.from(again.key).equals(Buffer.from(ctx.content.key)))
  assert.equal(again.sources, [], 'nobody was asked for sources')
  assert.is(ctx.manager.resolves.get(ctx.content.id), 1, 'the manager was not asked again')
})

test('a replay asks the manager in the background, and a content deleted there is replayed no more', async (ctx) => {
  ctx.nodes[0].hold(ctx.content)
  ctx.manager.publish(ctx.content, [ctx.nodes[0]])
  const held = new Set([ctx.content.id, ...ctx.content.chunkIds])
  const r = resolver(ctx, { cache: cacheOf(ctx, held) }, { cacheTtlMs: 1, replayCheckMs: 1 })
  await r.resolve(ctx.content.id)
  ctx.manager.remove(ctx.content.id)
  await new Promise(resolve => setTimeout(resolve, 20))
  // Still answered at once from the cache; the check runs behind it.
  const replayed = await r.resolve(ctx.content.id)
  assert.equal(replayed.sources, [])
  const deadline = Date.now() + 10_000
  while (ctx.manager.resolves.get(ctx.content.id) !== 2 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  assert.is(ctx.manager.resolves.get(ctx.content.id), 2, 'the manager was asked once more, in the background')
  await new Promise(resolve => setTimeout(resolve, 50))
  let refused: unknown
  try {
    await r.resolve(ctx.content.id)
  } catch (err) {
    refused = err
  }
  assert.ok(refused instanceof NotFoundError, `a deleted content is refused, got ${String(refused)}`)
})

test('a content no longer cached whole is resolved afresh, not replayed', async (ctx) => {
  ctx.nodes[0].hold(ctx.content)
  ctx.manager.publish(ctx.content, [ctx.nodes[0]])
  const held = new Set([ctx.content.id, ...ctx.content.chunkIds])
  const r = resolver(ctx, { cache: cacheOf(ctx, held) }, { cacheTtlMs: 1 })
  await r.resolve(ctx.content.id)
  held.delete(ctx.content.chunkIds[3])
  await new Promise(resolve => setTimeout(resolve, 20))
  const again = await r.resolve(ctx.content.id)
  assert.is(ctx.manager.resolves.get(ctx.content.id), 2)
  assert.equal(again.sources.map(s => s.id), [ctx.nodes[0].id])
})

test('a capability is never replayed without the manager: it may have been revoked', async (ctx) => {
  ctx.nodes[0].hold(ctx.content)
  ctx.manager.publish(ctx.content, [ctx.nodes[0]], { capability: 'cap-1' })
  const held = new Set([ctx.content.id, ...ctx.content.chunkIds])
  const r = resolver(ctx, { cache: cacheOf(ctx, held) }, { cacheTtlMs: 1 })
  await r.resolve(ctx.content.id, { capability: 'cap-1' })
  await new Promise(resolve => setTimeout(resolve, 20))
  await r.resolve(ctx.content.id, { capability: 'cap-1' })
  assert.is(ctx.manager.resolves.get(ctx.content.id), 2)
})

test('a caller that gives up does not break the shared resolution for others', async (ctx) => {
  ctx.nodes[0].hold(ctx.content)
  ctx.manager.publish(ctx.content, [ctx.nodes[0]])
  const r = resolver(ctx)
  const ac = new AbortController()
  const reason = new Error('gone')
  const first = r.resolve(ctx.content.id, { signal: ac.signal })
  const second = r.resolve(ctx.content.id)
  ac.abort(reason)
  assert.is(await failure(first), reason)
  assert.is((await second).id, ctx.content.id)
})

test('manager client: errors carry the manager\'s status and message', async (ctx) => {
  const info = await ctx.client.info()
  assert.is(info.peerId, ctx.signer.id)
  const missing = await failure(ctx.client.resolve(ctx.content.id))
  assert.instance(missing, NotFoundError)
  assert.match((missing as Error).message, /unknown content/)
  await ctx.client.report({ content: ctx.content.id, chunk: ctx.content.chunkIds[0], node: ctx.nodes[0].id, reason: 'test' })
  assert.equal(ctx.manager.reports, [{ content: ctx.content.id, chunk: ctx.content.chunkIds[0], node: ctx.nodes[0].id, reason: 'test' }])
})

test('manager client: unreachable is an UpstreamError, silent is a TimeoutError', async (ctx) => {
  const gone = new ManagerClient({ deadlines: ctx.deadlines }, { url: 'http://127.0.0.1:1' })
  assert.instance(await failure(gone.info()), UpstreamError)
  await gone.close()
  const silent: Server = createServer(() => { /* never answers */ })
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  const mute = new ManagerClient({ deadlines: ctx.deadlines }, { url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, timeoutMs: 200 })
  try {
    assert.instance(await failure(mute.info()), TimeoutError)
  } finally {
    await mute.close()
    silent.closeAllConnections()
    silent.close()
  }
})

test.run()
