/**
 * Only nodes the pool vouches for: the signed node list (kept on disk,
 * highest sequence wins, forged ones refused, used expired while the manager
 * is away and replaced once it is back), and the resolver fetching only from
 * peers on it, whoever named them: a stranger's DHT provider record is never
 * contacted, a node that just joined is picked up by one rate-limited
 * refresh, and a manager that serves no list yet has its own holders trusted
 * but no DHT record.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import type { CID } from 'multiformats/cid'
import { NoSourceError, UpstreamError } from '../../../../core/errors.ts'
import { silentLogger } from '../../../../core/log.ts'
import { signRecord, type NodeListBody } from '../../../../core/signed-record.ts'
import { ChunkFetcher } from '../../../../proxy/fetch/chunk-fetcher.ts'
import { DeadlineClock } from '../../../../proxy/fetch/deadline.ts'
import { ManagerClient, type NodeListSource } from '../../../../proxy/resolve/manager-client.ts'
import { PoolNodeList } from '../../../../proxy/resolve/node-list.ts'
import { Resolver, type ProviderFinder, type SourceOrigin } from '../../../../proxy/resolve/resolver.ts'
import type { SourceAddress } from '../../../../proxy/resolve/sources.ts'
import {
  makeContent, makeSigner, startStandInManager, startStandInNode,
  type Signer, type StandInManager, type StandInNode, type TestContent
} from '../../proxy-standins.ts'

const logger = silentLogger()
const CHUNK = 16 * 1024

// ---- the list itself ----------------------------------------------------------

interface ListCtx { dir: string, signer: Signer }
const list = suite<ListCtx>('pool node list')

list.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'cdn-node-list-'))
  ctx.signer = await makeSigner()
})

list.after.each(async (ctx) => {
  await rm(ctx.dir, { recursive: true, force: true })
})

async function signed (signer: Signer, seq: number, nodes: Array<[string, string]>, ttlMs = 3600_000): Promise<string> {
  const now = Date.now()
  const body: NodeListBody = { kind: 'node-list', iss: signer.id, iat: now, exp: now + ttlMs, seq, nodes: nodes.map(([peerId, http]) => ({ peerId, http })) }
  return await signRecord(body, signer.key)
}

/** A manager's list route the test steers: the next answer, or down. */
function steered (): NodeListSource & { next: string | Error, asked: number } {
  const s = {
    next: new UpstreamError('manager unreachable') as string | Error,
    asked: 0,
    poolNodes: async () => {
      s.asked++
      if (s.next instanceof Error) throw s.next
      return s.next
    }
  }
  return s
}

function listOver (ctx: ListCtx, manager: NodeListSource, trusted = [ctx.signer.id]): PoolNodeList {
  return new PoolNodeList({ manager, trusted: () => trusted, logger }, { file: join(ctx.dir, 'node-list.json') })
}

const A: SourceAddress = { id: 'peer-a', url: 'http://127.0.0.1:1/' }

list('a verified list vouches for its nodes, at the address it signed; others are not vouched for', async (ctx) => {
  const m = steered()
  m.next = await signed(ctx.signer, 1, [['peer-a', 'http://127.0.0.1:9001'], ['peer-b', 'http://127.0.0.1:9002']])
  const nodes = listOver(ctx, m)
  assert.is(nodes.judge(A, 'dht'), undefined, 'nothing is vouched for before a list is in hand')
  assert.is(await nodes.refresh(), true)
  assert.equal(nodes.judge(A, 'dht'), { id: 'peer-a', url: 'http://127.0.0.1:9001' })
  assert.equal(nodes.judge(A, 'manager'), { id: 'peer-a', url: 'http://127.0.0.1:9001' })
  assert.is(nodes.judge({ id: 'stranger', url: 'http://127.0.0.1:9003' }, 'dht'), undefined)
})

list('the highest sequence number wins; a forged or foreign list is refused and changes nothing', async (ctx) => {
  const m = steered()
  const nodes = listOver(ctx, m)
  m.next = await signed(ctx.signer, 10, [['peer-a', 'http://127.0.0.1:9001']])
  await nodes.refresh()
  m.next = await signed(ctx.signer, 5, [['peer-b', 'http://127.0.0.1:9002']])
  assert.is(await nodes.refresh(), false)
  assert.is(nodes.state?.seq, 10)
  assert.ok(nodes.lists('peer-a'))
  assert.not.ok(nodes.lists('peer-b'))
  m.next = await signed(await makeSigner(), 99, [['stranger', 'http://127.0.0.1:6666']])
  try {
    await nodes.refresh()
    assert.unreachable('a list signed by someone else is refused')
  } catch (err) {
    assert.is((err as { status?: number }).status, 403)
  }
  const [body, sig] = (await signed(ctx.signer, 11, [['peer-a', 'x']])).split('.')
  const tampered = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), nodes: [{ peerId: 'stranger', http: 'http://127.0.0.1:6666' }] })).toString('base64url')
  m.next = `${tampered}.${sig}`
  await nodes.refresh().then(() => assert.unreachable('a tampered list is refused'), () => {})
  assert.is(nodes.state?.seq, 10)
  assert.not.ok(nodes.lists('stranger'))
  const kept = JSON.parse(await readFile(join(ctx.dir, 'node-list.json'), 'utf8'))
  assert.is(JSON.parse(Buffer.from(kept.list.split('.')[0], 'base64url').toString()).seq, 10, 'the file keeps the highest')
})

list('with the manager down, the kept list is used even expired, and replaced as soon as the manager is back', async (ctx) => {
  const m = steered()
  // Unexpired when fetched: a list is refused expired only when it comes from the manager now.
  const first = listOver(ctx, { poolNodes: async () => await signed(ctx.signer, 1, [['peer-a', 'http://127.0.0.1:9001']], 60_000) })
  await first.refresh()
  // Later: a new start, the manager away, the kept list long expired.
  const later = new PoolNodeList({ manager: m, trusted: () => [ctx.signer.id], logger, now: () => Date.now() + 3600_000 }, { file: join(ctx.dir, 'node-list.json') })
  await later.load()
  assert.is(later.state?.expired, true)
  assert.ok(later.judge(A, 'dht'), 'the expired list still vouches while nothing newer can be had')
  await later.refresh().then(() => assert.unreachable('the manager is down'), () => {})
  assert.ok(later.lists('peer-a'))
  // The manager answers again: a poke (the manager link saw it back) fetches at once.
  m.next = await signed(ctx.signer, 2, [['peer-b', 'http://127.0.0.1:9002']], 7200_000)
  const asked = m.asked
  later.poke()
  await eventuallyTrue(() => later.state?.seq === 2, 'the fresh list adopted')
  assert.is(m.asked, asked + 1)
  assert.not.ok(later.lists('peer-a'))
  assert.ok(later.lists('peer-b'))
})

list('a kept list signed by an identity no longer trusted is not used', async (ctx) => {
  const m = steered()
  m.next = await signed(ctx.signer, 1, [['peer-a', 'http://127.0.0.1:9001']])
  await listOver(ctx, m).refresh()
  const other = listOver(ctx, m, [(await makeSigner()).id])
  await other.load()
  assert.is(other.judge(A, 'dht'), undefined)
})

list('a source the list does not know triggers one refresh, at most every few seconds', async (ctx) => {
  const m = steered()
  m.next = await signed(ctx.signer, 1, [['peer-a', 'http://127.0.0.1:9001']])
  const nodes = listOver(ctx, m)
  await nodes.refresh()
  m.next = await signed(ctx.signer, 2, [['peer-a', 'http://127.0.0.1:9001'], ['peer-new', 'http://127.0.0.1:9004']])
  const signal = AbortSignal.timeout(10_000)
  assert.is(await nodes.refreshForUnknown(signal), true)
  assert.ok(nodes.lists('peer-new'))
  const asked = m.asked
  for (let i = 0; i < 20; i++) assert.is(await nodes.refreshForUnknown(signal), false)
  assert.is(m.asked, asked, 'a flood of unknown records costs the manager nothing more')
})

list.run()

// ---- the resolver fetching only from vouched-for nodes --------------------------

interface Ctx {
  signer: Signer
  manager: StandInManager
  /** on the pool's list, holding the content */
  node: StandInNode
  /** holds the content too, but no pool vouches for it */
  stranger: StandInNode
  deadlines: DeadlineClock
  fetcher: ChunkFetcher
  client: ManagerClient
  content: TestContent
  ignored: SourceOrigin[]
}

const resolving = suite<Ctx>('resolving with the node list')

resolving.before.each(async (ctx) => {
  ctx.signer = await makeSigner()
  ctx.manager = await startStandInManager(ctx.signer)
  ctx.node = await startStandInNode()
  ctx.stranger = await startStandInNode()
  ctx.deadlines = new DeadlineClock()
  ctx.fetcher = new ChunkFetcher({ deadlines: ctx.deadlines, logger })
  ctx.client = new ManagerClient({ deadlines: ctx.deadlines }, { url: ctx.manager.url })
  ctx.content = await makeContent({ size: 5 * CHUNK, chunkSize: CHUNK, signer: ctx.signer })
  ctx.node.hold(ctx.content)
  ctx.stranger.hold(ctx.content)
  ctx.ignored = []
})

resolving.after.each(async (ctx) => {
  await ctx.fetcher.close()
  await ctx.client.close()
  ctx.deadlines.close()
  await ctx.node.close()
  await ctx.stranger.close()
  await ctx.manager.close()
})

/** A DHT whose provider records name whoever the test says, as any DHT server may answer. */
function providers (...records: SourceAddress[]): ProviderFinder {
  return {
    async * findProviders (_cid: CID) {
      for (const r of records) yield r
    }
  }
}

function resolver (ctx: Ctx, finder: ProviderFinder): { resolver: Resolver, nodes: PoolNodeList } {
  const nodes = new PoolNodeList({ manager: ctx.client, trusted: () => [ctx.signer.id], logger, onIgnored: (from) => { ctx.ignored.push(from) } })
  const r = new Resolver({ manager: ctx.client, providers: finder, vouching: nodes, blobs: ctx.fetcher, haves: ctx.fetcher, deadlines: ctx.deadlines, trusted: () => [ctx.signer.id], logger }, { providerTimeoutMs: 5000 })
  return { resolver: r, nodes }
}

resolving('a provider record from a peer not on the list is never contacted', async (ctx) => {
  ctx.manager.publish(ctx.content, [])
  ctx.manager.join([ctx.node])
  const { resolver: r } = resolver(ctx, providers(ctx.stranger, ctx.node))
  const resolved = await r.resolve(ctx.content.id)
  assert.equal(resolved.sources.map(s => s.id), [ctx.node.id])
  assert.equal(ctx.stranger.paths, [], 'not even its have-bitmap was asked for')
  assert.ok(ctx.ignored.includes('dht'), 'the ignored record is counted')
})

resolving('a stranger whose records claim a listed peer id is sent nowhere: the address comes from the signed list', async (ctx) => {
  ctx.manager.publish(ctx.content, [])
  ctx.manager.join([ctx.node])
  const { resolver: r } = resolver(ctx, providers({ id: ctx.node.id, url: ctx.stranger.url }))
  const resolved = await r.resolve(ctx.content.id)
  assert.equal(resolved.sources.map(s => s.url), [ctx.node.url])
  assert.equal(ctx.stranger.paths, [])
})

resolving('a holder the manager names but the signed list does not is not used either', async (ctx) => {
  ctx.manager.publish(ctx.content, [ctx.node, ctx.stranger])
  ctx.manager.pool?.delete(ctx.stranger.id)
  const { resolver: r } = resolver(ctx, providers())
  const resolved = await r.resolve(ctx.content.id)
  assert.equal(resolved.sources.map(s => s.id), [ctx.node.id])
  assert.equal(ctx.stranger.paths, [])
  assert.ok(ctx.ignored.includes('manager'))
})

resolving('a node that joined after the list was fetched is picked up by one refresh', async (ctx) => {
  ctx.manager.publish(ctx.content, [])
  const { resolver: r, nodes } = resolver(ctx, providers(ctx.node))
  await nodes.refresh()
  assert.not.ok(nodes.lists(ctx.node.id))
  ctx.manager.join([ctx.node])
  const before = ctx.manager.listRequests
  const resolved = await r.resolve(ctx.content.id)
  assert.equal(resolved.sources.map(s => s.id), [ctx.node.id])
  assert.is(ctx.manager.listRequests, before + 1)
})

resolving('with a manager that serves no list yet, its holders are trusted and DHT records are not', async (ctx) => {
  ctx.manager.pool = null
  ctx.manager.publish(ctx.content, [ctx.node])
  const { resolver: r } = resolver(ctx, providers(ctx.stranger))
  // The first resolve is what learns that the route is missing.
  const resolved = await r.resolve(ctx.content.id)
  assert.equal(resolved.sources.map(s => s.id), [ctx.node.id])
  assert.equal(ctx.stranger.paths, [])
  // Without the manager's word on holders, the DHT alone vouches for nobody.
  const other = await makeContent({ size: CHUNK, chunkSize: CHUNK, signer: ctx.signer })
  ctx.stranger.hold(other)
  ctx.manager.publish(other, [])
  await r.resolve(other.id).then(() => assert.unreachable('no vouched-for source'), (err: unknown) => { assert.instance(err, NoSourceError) })
  assert.equal(ctx.stranger.paths, [])
})

resolving.run()

async function eventuallyTrue (check: () => boolean, what: string): Promise<void> {
  const until = Date.now() + 10_000
  while (!check()) {
    if (Date.now() > until) throw new Error(`never happened: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}
