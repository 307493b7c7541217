/**
 * `createFetchClient` finding sources through the real DHT: a manager host
 * and a node host (libp2p, on loopback) stand behind the stand-in manager
 * and node, and the manager names no holders, so the DHT is the only way.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { parseContentId } from '../../../../core/ids.ts'
import { createHost, httpMultiaddr, type Host } from '../../../../core/host.ts'
import { silentLogger } from '../../../../core/log.ts'
import { createFetchClient } from '../../../../proxy/client.ts'
import { UpstreamError } from '../../../../core/errors.ts'
import {
  collect, makeContent, makeSigner, startStandInManager, startStandInNode,
  type Signer, type StandInManager, type StandInNode, type TestContent
} from '../../proxy-standins.ts'

interface Ctx {
  signer: Signer
  manager: StandInManager
  managerHost: Host
  node: StandInNode
  nodeHost: Host
  content: TestContent
  secret: TestContent
}

const test = suite<Ctx>('fetch client over the DHT')

test.before(async (ctx) => {
  ctx.signer = await makeSigner()
  ctx.manager = await startStandInManager(ctx.signer)
  // The manager's libp2p identity is the key that signs manifests, as in the real manager.
  ctx.managerHost = await createHost({ privateKey: ctx.signer.key, dhtServer: true })
  ctx.manager.multiaddrs = ctx.managerHost.getMultiaddrs().map(String)
  ctx.node = await startStandInNode()
  ctx.nodeHost = await createHost({ privateKey: (await makeSigner()).key, dhtServer: true, announce: [httpMultiaddr(ctx.node.url)] })
  ctx.node.id = ctx.nodeHost.peerId.toString()
  // A pool node (on the signed list) that holds what the manager names no holder for.
  ctx.manager.join([ctx.node])
  await ctx.nodeHost.dial(ctx.managerHost.getMultiaddrs()[0])
  ctx.content = await makeContent({ size: 300_000, chunkSize: 16 * 1024, signer: ctx.signer, name: 'a.bin' })
  ctx.secret = await makeContent({ size: 100_000, chunkSize: 16 * 1024, signer: ctx.signer, name: 'secret.bin' })
  for (const c of [ctx.content, ctx.secret]) {
    ctx.node.hold(c)
    await ctx.nodeHost.contentRouting.provide(parseContentId(c.id), { signal: AbortSignal.timeout(10_000) })
  }
  ctx.manager.publish(ctx.content, [])
  ctx.manager.publish(ctx.secret, [], { private: true })
})

test.after(async (ctx) => {
  await ctx.nodeHost?.stop()
  await ctx.managerHost?.stop()
  await ctx.node?.close()
  await ctx.manager?.close()
})

test('a content whose holders only the DHT knows is fetched whole', async (ctx) => {
  const client = await createFetchClient({ managerUrl: ctx.manager.url, logger: silentLogger() })
  try {
    const opened = await client.engine.open(ctx.content.id)
    assert.equal(opened.metadata, { name: 'a.bin', type: 'application/octet-stream' })
    const { bytes } = await collect(opened.body)
    assert.ok(bytes.equals(ctx.content.plaintext))
  } finally {
    await client.close()
  }
})

test('a private content is fetched with its capability key, the manifest coming from the provider', async (ctx) => {
  const client = await createFetchClient({ managerUrl: ctx.manager.url, logger: silentLogger() })
  try {
    const opened = await client.engine.open(ctx.secret.id, { key: ctx.secret.key })
    assert.is(opened.metadata.name, 'secret.bin')
    const { bytes } = await collect(opened.body)
    assert.ok(bytes.equals(ctx.secret.plaintext))
  } finally {
    await client.close()
  }
})

test('createFetchClient fails at once when the manager does not answer', async () => {
  try {
    await createFetchClient({ managerUrl: 'http://127.0.0.1:1', logger: silentLogger() })
    assert.unreachable('should fail')
  } catch (err) {
    assert.instance(err, UpstreamError)
  }
})

test.run()
