/**
 * Capability links with the manager stopped, over a real DHT: a manager host
 * and two node hosts (libp2p on loopback) stand behind the stand-in manager
 * and nodes. A proxy started while the manager was up keeps finding
 * providers after it is gone; a proxy started while it is down trusts the
 * remembered signer and joins the DHT through the remembered nodes.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { NoSourceError, NotFoundError, SignatureError } from '../../../core/errors.ts'
import { createHost, httpMultiaddr, type Host } from '../../../core/host.ts'
import { parseContentId } from '../../../core/ids.ts'
import { silentLogger } from '../../../core/log.ts'
import { routingTableSize } from '../../../proxy/resolve/dht-join.ts'
import { startFetchStack, type FetchStack } from '../../../proxy/fetch-stack.ts'
import {
  collect, eventually, makeContent, makeSigner, startStandInManager, startStandInNode,
  type Signer, type StandInManager, type StandInNode, type TestContent
} from '../proxy-standins.ts'

interface Ctx {
  dir: string
  signer: Signer
  manager: StandInManager
  managerUrl: string
  managerHost: Host
  nodes: StandInNode[]
  nodeHosts: Host[]
  /** never asked for before the manager is gone; the manager does not know it either */
  unseen: TestContent
  /** signed by someone else than the manager */
  foreign: TestContent
}

const test = suite<Ctx>('proxy with the manager down')
const logger = silentLogger()
const CHUNK = 16 * 1024

test.before(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'cdn-proxy-state-'))
  ctx.signer = await makeSigner()
  ctx.manager = await startStandInManager(ctx.signer)
  ctx.managerUrl = ctx.manager.url
  // The manager's libp2p identity is the key that signs manifests, as in the real manager.
  ctx.managerHost = await createHost({ privateKey: ctx.signer.key, dhtServer: true })
  ctx.manager.multiaddrs = ctx.managerHost.getMultiaddrs().map(String)
  ctx.nodes = []
  ctx.nodeHosts = []
  for (let i = 0; i < 2; i++) {
    const node = await startStandInNode()
    const host = await createHost({ privateKey: (await makeSigner()).key, dhtServer: true, announce: [httpMultiaddr(node.url)] })
    node.id = host.peerId.toString()
    await host.dial(ctx.managerHost.getMultiaddrs()[0])
    ctx.nodes.push(node)
    ctx.nodeHosts.push(host)
  }
  ctx.manager.join(ctx.nodes)
  ctx.unseen = await makeContent({ size: 7 * CHUNK, chunkSize: CHUNK, signer: ctx.signer, name: 'unseen.bin' })
  ctx.foreign = await makeContent({ size: 2 * CHUNK, chunkSize: CHUNK, signer: await makeSigner(), name: 'foreign.bin' })
  for (const c of [ctx.unseen, ctx.foreign]) {
    for (const [i, node] of ctx.nodes.entries()) {
      node.hold(c)
      await ctx.nodeHosts[i].contentRouting.provide(parseContentId(c.id), { signal: AbortSignal.timeout(10_000) })
    }
  }
})

test.after(async (ctx) => {
  for (const h of ctx.nodeHosts ?? []) await h.stop()
  await ctx.managerHost?.stop()
  for (const n of ctx.nodes ?? []) await n.close()
  await ctx.manager?.close()
  await rm(ctx.dir, { recursive: true, force: true })
})

async function stack (ctx: Ctx, stateDir?: string): Promise<FetchStack> {
  return await startFetchStack({ managerUrl: ctx.managerUrl, logger, requireManager: false, stateDir, resolver: { providerTimeoutMs: 10_000 } })
}

async function refused (p: Promise<unknown>): Promise<unknown> {
  try {
    await p
  } catch (err) {
    return err
  }
  throw new Error('expected a failure')
}

test('a proxy started with the manager up keeps finding providers after the manager is killed', async (ctx) => {
  const proxy = await stack(ctx, ctx.dir)
  try {
    await eventually(() => proxy.link.info != null, 'the manager answered')
    // Working on without the manager needs the pool's signed word on who its nodes are.
    await eventually(() => (proxy.nodeList.state?.nodes ?? 0) >= ctx.nodes.length, 'the signed node list')
    // Nothing is looked up through the manager meanwhile: only joining the DHT can have taught the proxy about the nodes.
    await eventually(() => routingTableSize(proxy.host) >= 1 + ctx.nodeHosts.length, 'the nodes in the routing table')
    // Joined, not just told about: the join's lookup has dialled the nodes, so the DHT is reachable without the manager
    // (peers only named by the manager's answer, not yet dialled, could be lost with it).
    await eventually(() => ctx.nodeHosts.every(h => proxy.host.getConnections().some(conn => conn.remotePeer.equals(h.peerId))), 'the nodes dialled')
    await ctx.managerHost.stop()
    await ctx.manager.close()
    // Never resolved before: the manifest, like the chunks, comes from nodes found through the DHT.
    const opened = await proxy.engine.open(ctx.unseen.id, { key: ctx.unseen.key })
    assert.is(opened.metadata.name, 'unseen.bin')
    assert.ok((await collect(opened.body)).bytes.equals(ctx.unseen.plaintext))
    assert.instance(await refused(proxy.engine.open(ctx.foreign.id, { key: ctx.foreign.key })), SignatureError)
  } finally {
    await proxy.close()
  }
  const state = JSON.parse(await readFile(join(ctx.dir, 'network.json'), 'utf8'))
  assert.is(state.manager.peerId, ctx.signer.id)
  assert.equal(new Set(state.nodes.map((n: { peerId: string }) => n.peerId)), new Set(ctx.nodeHosts.map(h => h.peerId.toString())))
})

test('a proxy started with the manager down trusts the remembered signer and finds nodes through the remembered peers', async (ctx) => {
  const proxy = await stack(ctx, ctx.dir)
  try {
    const opened = await proxy.engine.open(ctx.unseen.id, { key: ctx.unseen.key })
    assert.ok((await collect(opened.body)).bytes.equals(ctx.unseen.plaintext))
    // The remembered identity is what is trusted: another signer's manifest is refused.
    assert.instance(await refused(proxy.engine.open(ctx.foreign.id, { key: ctx.foreign.key })), SignatureError)
  } finally {
    await proxy.close()
  }
})

test('without remembered state and without the manager, there is no way to the nodes', async (ctx) => {
  const proxy = await stack(ctx)
  try {
    const err = await refused(proxy.engine.open(ctx.unseen.id, { key: ctx.unseen.key }))
    assert.ok(err instanceof NotFoundError || err instanceof NoSourceError, String(err))
  } finally {
    await proxy.close()
  }
})

test.run()
