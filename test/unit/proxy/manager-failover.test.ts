/**
 * A proxy given several managers of one pool: every call it makes goes past
 * a closed port and a manager answering 503 to the one that answers, and
 * starts there the next time; a live manager's 4xx is final. The signer it
 * trusts is the pool's (`pool` in /api/info), not the answering manager's
 * own peer id, so content resolves through any manager of the pool.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { ForbiddenError, NotFoundError, UpstreamError } from '../../../core/errors.ts'
import { silentLogger } from '../../../core/log.ts'
import { startFetchStack } from '../../../proxy/fetch-stack.ts'
import { startProxy } from '../../../proxy/daemon.ts'
import { DeadlineClock } from '../../../proxy/fetch/deadline.ts'
import { ManagerClient } from '../../../proxy/resolve/manager-client.ts'
import { PeerMemory } from '../../../proxy/state/peer-memory.ts'
import {
  collect, eventually, makeContent, makeSigner, startStandInManager, startStandInNode,
  type Signer, type StandInManager, type StandInNode, type TestContent
} from '../proxy-standins.ts'
import { answering, closedPort, type FakeManager } from './failover-servers.ts'
import { caught } from '../../support/rejects.ts'

interface Ctx {
  dir: string
  signer: Signer
  /** two managers of one pool: their own peer ids, the pool's signer */
  managers: StandInManager[]
  node: StandInNode
  content: TestContent
  closed: string
  busy: FakeManager
  deadlines: DeadlineClock
}

const test = suite<Ctx>('proxy failover across managers')
const logger = silentLogger()
const CHUNK = 16 * 1024

test.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'cdn-proxy-failover-'))
  ctx.signer = await makeSigner()
  ctx.node = await startStandInNode()
  ctx.content = await makeContent({ size: 5 * CHUNK + 3, chunkSize: CHUNK, signer: ctx.signer, name: 'pool.bin' })
  ctx.node.hold(ctx.content)
  ctx.managers = []
  for (let i = 0; i < 2; i++) {
    const m = await startStandInManager(ctx.signer)
    m.poolInfo = { peerId: (await makeSigner()).id }
    m.publish(ctx.content, [ctx.node])
    ctx.managers.push(m)
  }
  for (const m of ctx.managers) m.poolInfo = { peerId: m.poolInfo?.peerId ?? '', managers: ctx.managers.map(x => x.url) }
  ctx.closed = await closedPort()
  ctx.busy = await answering(503, 'shutting down')
  ctx.deadlines = new DeadlineClock()
})

test.after.each(async (ctx) => {
  ctx.deadlines.close()
  await ctx.busy.close()
  for (const m of ctx.managers) await m.close()
  await ctx.node.close()
  await rm(ctx.dir, { recursive: true, force: true })
})

test('every route goes past a closed port and a 503 to the live manager, and later calls start there', async (ctx) => {
  const [live] = ctx.managers
  const client = new ManagerClient({ deadlines: ctx.deadlines }, { url: [ctx.closed, ctx.busy.url, live.url] })
  try {
    const info = await client.info()
    assert.is(info.pool, ctx.signer.id)
    assert.is.not(info.peerId, ctx.signer.id)
    assert.equal(ctx.busy.seen.map(s => s.path), ['/api/info'])
    assert.is(client.url, live.url)
    const r = await client.resolve(ctx.content.id)
    assert.is(r.id, ctx.content.id)
    assert.type(await client.poolNodes(), 'string')
    await client.report({ content: ctx.content.id, chunk: ctx.content.chunkIds[0], node: ctx.node.id, reason: 'test' })
    assert.is(live.reports.length, 1)
    // The manager that answered is asked first: the 503 one was tried once, by the first call only.
    assert.is(ctx.busy.seen.length, 1)
    assert.equal(live.paths, ['/api/info', `/api/contents/${ctx.content.id}`, '/api/pool/nodes', '/api/reports'])
  } finally {
    await client.close()
  }
})

test("a live manager's 4xx is final: the next manager is not asked", async (ctx) => {
  const refusing = await answering(404, 'unknown content')
  const forbidding = await answering(403, 'capability expired')
  const [live] = ctx.managers
  const client = new ManagerClient({ deadlines: ctx.deadlines }, { url: [refusing.url, live.url] })
  const other = new ManagerClient({ deadlines: ctx.deadlines }, { url: [forbidding.url, live.url] })
  try {
    const missing = await caught(client.resolve(ctx.content.id))
    assert.instance(missing, NotFoundError)
    assert.match(missing.message, /unknown content/)
    assert.instance(await caught(other.resolve(ctx.content.id)), ForbiddenError)
    assert.equal(live.paths, [], 'the second manager never heard of it')
    // The refusing manager answered, so it stays the one asked first.
    assert.instance(await caught(client.info()), NotFoundError)
    assert.is(refusing.seen.length, 2)
  } finally {
    await client.close()
    await other.close()
    await refusing.close()
    await forbidding.close()
  }
})

test('no manager answering: one error names each of them; one manager fails as it always did', async (ctx) => {
  const client = new ManagerClient({ deadlines: ctx.deadlines }, { url: [ctx.closed, ctx.busy.url] })
  const single = new ManagerClient({ deadlines: ctx.deadlines }, { url: ctx.closed })
  try {
    const err = await caught(client.resolve(ctx.content.id))
    assert.instance(err, UpstreamError)
    assert.match(err.message, /^no manager answered: /)
    assert.ok(err.message.includes(`${ctx.closed} (manager at ${ctx.closed} is unreachable`), err.message)
    assert.ok(err.message.includes(`${ctx.busy.url} (manager answered 503: shutting down)`), err.message)
    const one = await caught(single.info())
    assert.instance(one, UpstreamError)
    assert.match(one.message, /^manager at http:\/\/127\.0\.0\.1:\d+ is unreachable/)
  } finally {
    await client.close()
    await single.close()
  }
})

test('a proxy whose first manager is down serves content through the second, trusting the pool id, and remembers it', async (ctx) => {
  const [, second] = ctx.managers
  const stateDir = join(ctx.dir, 'state')
  const proxy = await startProxy({ managerUrl: [ctx.closed, second.url], httpPort: 0, stateDir, logger })
  try {
    const res = await fetch(`${proxy.http}/c/${ctx.content.id}`, { signal: AbortSignal.timeout(30_000) })
    assert.is(res.status, 200)
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(ctx.content.plaintext))
    assert.is(second.resolves.get(ctx.content.id), 1)
  } finally {
    await proxy.stop()
  }
  const state = JSON.parse(await readFile(join(stateDir, 'network.json'), 'utf8'))
  assert.is(state.manager.pool, ctx.signer.id)
  assert.is(state.manager.url, second.url)
  assert.equal(state.manager.managers, ctx.managers.map(m => m.url))
})

test("a proxy told of one manager learns the pool's others from it and fails over to them", async (ctx) => {
  const [first, second] = ctx.managers
  const stack = await startFetchStack({ managerUrl: first.url, logger, requireManager: true })
  try {
    await eventually(() => stack.link.info != null, 'the first manager answered')
    await first.close()
    const opened = await stack.engine.open(ctx.content.id)
    assert.ok((await collect(opened.body)).bytes.equals(ctx.content.plaintext))
    assert.is(second.resolves.get(ctx.content.id), 1)
  } finally {
    await stack.close()
  }
})

test('the remembered pool identity is kept, and applies to any manager of the pool', async (ctx) => {
  const file = join(ctx.dir, 'network.json')
  const memory = new PeerMemory({ file, logger })
  const [a, b] = ctx.managers
  memory.rememberManager(a.url, { peerId: ctx.node.id, multiaddrs: [], http: a.url, pool: ctx.signer.id, managers: [a.url, b.url] })
  await memory.save()
  const again = new PeerMemory({ file, logger })
  await again.load()
  assert.is(again.manager([ctx.closed, `${b.url}/`])?.pool, ctx.signer.id, 'a listed manager of the pool, written with a slash')
  assert.is(again.manager(ctx.closed), undefined, 'another pool is no reason to trust this signer')
})

test.run()
