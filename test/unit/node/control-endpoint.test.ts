/**
 * A real node (startNode) against a stand-in manager built here from
 * core/host.ts: orders travel over libp2p, blobs over HTTP from a tiny server
 * of this test, and the results are checked on the node's data plane.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encryptChunk, newContentKey } from '../../../core/chunk-crypto.ts'
import { rpcCall, serveRpc } from '../../../core/control-rpc.ts'
import { createHost, httpUrlFromMultiaddrs, parseMultiaddr, type Host } from '../../../core/host.ts'
import { chunkCid, parseContentId } from '../../../core/ids.ts'
import { silentLogger } from '../../../core/log.ts'
import { sealMetadata, signManifest } from '../../../core/manifest.ts'
import { CONTROL_PROTOCOL, parseNodeMessage, type Heartbeat, type NodeToManager } from '../../../core/wire.ts'
import { startNode, type NodeDaemon } from '../../../node/daemon.ts'

const logger = silentLogger()
const CHUNK = 50_000
const TOKEN = 'join-secret'

/** Polls until `check` holds; the deadline only bounds a broken run, it asserts nothing about speed. */
async function waitFor (what: string, check: () => boolean | Promise<boolean>, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs
  while (!await check()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`)
    await sleep(20)
  }
}

// --- a content of 3 chunks, and a blob server that can also lie ---
const key = newContentKey()
const plain = new Uint8Array(CHUNK * 3 - 7).map((_, i) => (i * 7) % 251)
const chunks = [0, 1, 2].map(i => encryptChunk(key, i, plain.subarray(i * CHUNK, (i + 1) * CHUNK)))
const chunkIds = chunks.map(c => chunkCid(c).toString())
const managerKey = await generateKeyPair('Ed25519')
const signed = await signManifest({
  size: plain.length,
  chunkSize: CHUNK,
  chunks: chunkIds,
  createdAt: new Date().toISOString(),
  publisher: 'tester',
  meta: sealMetadata(key, { name: 'clip.mp4', type: 'video/mp4' })
}, managerKey, peerIdFromPrivateKey(managerKey).toString())
const contentId = signed.id.toString()
const blobs = new Map<string, Uint8Array>([[contentId, signed.bytes], ...chunkIds.map((id, i) => [id, chunks[i]] as [string, Uint8Array])])

let blobServer: Server
let blobUrl = ''
let manager: Host
let stranger: Host
let node: NodeDaemon
let dataDir = ''
const seen: NodeToManager[] = []
const joinPeers: string[] = []
/** what the stand-in manager answers heartbeats with */
const answer: { drop: string[], removed: boolean } = { drop: [], removed: false }

test.before(async () => {
  blobServer = createServer((req, res) => {
    const [, kind, id] = (req.url ?? '').split('/')
    const blob = blobs.get(id ?? '')
    if (blob == null) { res.writeHead(404).end(); return }
    // /liar/<id> answers the right length with one byte flipped
    const body = kind === 'liar' ? Buffer.from(blob).map((b, i) => i === 10 ? b ^ 1 : b) : blob
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body)
  })
  blobServer.listen(0, '127.0.0.1')
  await new Promise(resolve => blobServer.once('listening', resolve))
  blobUrl = `http://127.0.0.1:${(blobServer.address() as AddressInfo).port}`

  manager = await createHost({ privateKey: managerKey, dhtServer: true })
  await serveRpc(manager, CONTROL_PROTOCOL, async (request: unknown, peer: PeerId) => {
    const msg = parseNodeMessage(request)
    seen.push(msg)
    if (msg.type === 'join') {
      if (msg.token !== TOKEN) return { type: 'error', code: 'ERR_UNAUTHORIZED', message: 'bad join token' }
      joinPeers.push(peer.toString())
      return { type: 'joined', heartbeatMs: 100 }
    }
    if (answer.removed) return { type: 'error', code: 'ERR_REMOVED', message: 'removed by an operator' }
    return { type: 'ack', known: true, drop: answer.drop }
  }, { allow: () => true })
  stranger = await createHost({ privateKey: await generateKeyPair('Ed25519'), dhtServer: false })

  dataDir = await mkdtemp(join(tmpdir(), 'cdn-node-control-'))
  node = await startNode({
    dataDir,
    manager: `${manager.getMultiaddrs()[0].toString()}`,
    joinToken: TOKEN,
    capacity: 10_000_000,
    maxEgress: Infinity,
    zone: 'test-zone',
    logger
  })
})

test.after(async () => {
  await node?.stop()
  await stranger?.stop()
  await manager?.stop()
  await new Promise<void>(resolve => { blobServer.close(() => { resolve() }); blobServer.closeAllConnections() })
  await rm(dataDir, { recursive: true, force: true })
})

async function order (from: Host, body: unknown): Promise<any> {
  return await rpcCall(from, parseMultiaddr(node.multiaddrs[0]), CONTROL_PROTOCOL, body, { timeout: 30_000 })
}

async function have (): Promise<{ status: number, bits?: number[] }> {
  const res = await fetch(`${node.http}/have/${contentId}`)
  if (res.status !== 200) { await res.arrayBuffer(); return { status: res.status } }
  const body = await res.json() as { bitmap: string }
  return { status: 200, bits: [...Buffer.from(body.bitmap, 'base64')] }
}

async function chunkStatus (id: string): Promise<number> {
  const res = await fetch(`${node.http}/chunk/${id}`, { method: 'HEAD' })
  return res.status
}

test('the node joins its manager with the token, its data URL and zone, then heartbeats', async () => {
  await waitFor('a join', () => joinPeers.length > 0)
  assert.is(joinPeers[0], node.peerId)
  const join = seen.find(m => m.type === 'join')
  assert.ok(join?.type === 'join')
  assert.is(join.http, node.http)
  assert.is(join.zone, 'test-zone')
  assert.is(join.capacity, 10_000_000)
  assert.is(join.egressCap, undefined)
  await waitFor('a heartbeat', () => seen.some(m => m.type === 'heartbeat'))
})

test('a store order from the manager lands the blobs, indexes the content and announces it', async () => {
  const reply = await order(manager, {
    type: 'store',
    blobs: [contentId, chunkIds[0], chunkIds[2]].map(cid => ({ cid, sources: [`${blobUrl}/missing/${cid}`, `${blobUrl}/blob/${cid}`] })),
    contents: [contentId]
  })
  assert.is(reply.type, 'stored')
  assert.equal(reply.results.map((r: any) => r.ok), [true, true, true])

  assert.equal(await have(), { status: 200, bits: [0xa0] })
  const res = await fetch(`${node.http}/chunk/${chunkIds[2]}`)
  assert.equal(Buffer.from(await res.arrayBuffer()), Buffer.from(chunks[2]))
  assert.is(await chunkStatus(chunkIds[1]), 404)

  const providers = []
  for await (const p of manager.contentRouting.findProviders(parseContentId(contentId), { signal: AbortSignal.timeout(10_000) })) {
    providers.push(p)
    break
  }
  assert.is(providers[0]?.id.toString(), node.peerId)
  assert.is(httpUrlFromMultiaddrs(providers[0]?.multiaddrs ?? []), node.http)

  await waitFor('a heartbeat reporting the content', () => seen.some(m => m.type === 'heartbeat' && contentId in (m as Heartbeat).contents && (m as Heartbeat).blobs === 3))
})

test('an order from any other peer is refused with ERR_FORBIDDEN and stores nothing', async () => {
  const reply = await order(stranger, {
    type: 'store',
    blobs: [{ cid: chunkIds[1], sources: [`${blobUrl}/blob/${chunkIds[1]}`] }],
    contents: []
  })
  assert.is(reply.type, 'error')
  assert.is(reply.code, 'ERR_FORBIDDEN')
  assert.is(await chunkStatus(chunkIds[1]), 404)

  const del = await order(stranger, { type: 'delete', blobs: [chunkIds[0]], contents: [contentId] })
  assert.is(del.code, 'ERR_FORBIDDEN')
  assert.is(await chunkStatus(chunkIds[0]), 200)
  assert.equal(await have(), { status: 200, bits: [0xa0] })
})

test('a source serving wrong bytes fails that blob and stores nothing; a good next source is used', async () => {
  const bad = await order(manager, {
    type: 'store',
    blobs: [{ cid: chunkIds[1], sources: [`${blobUrl}/liar/${chunkIds[1]}`] }],
    contents: []
  })
  assert.is(bad.type, 'stored')
  assert.is(bad.results[0].cid, chunkIds[1])
  assert.is(bad.results[0].ok, false)
  assert.type(bad.results[0].error, 'string')
  assert.is(await chunkStatus(chunkIds[1]), 404)
  assert.equal(await have(), { status: 200, bits: [0xa0] })

  const good = await order(manager, {
    type: 'store',
    blobs: [{ cid: chunkIds[1], sources: [`${blobUrl}/liar/${chunkIds[1]}`, `${blobUrl}/blob/${chunkIds[1]}`] }],
    contents: [contentId]
  })
  assert.is(good.results[0].ok, true)
  assert.equal(await have(), { status: 200, bits: [0xe0] })
})

test('a malformed order is refused with a protocol error', async () => {
  const reply = await order(manager, { type: 'store', blobs: [{ cid: 'nope', sources: ['ftp://x'] }], contents: [] })
  assert.is(reply.type, 'error')
  assert.is(reply.code, 'ERR_PROTOCOL')
})

test('after a restart the node still holds and serves the content', async () => {
  const peerId = node.peerId
  await node.stop()
  await node.stop()
  node = await startNode({ dataDir, manager: manager.getMultiaddrs()[0].toString(), joinToken: TOKEN, capacity: 10_000_000, maxEgress: 1_000_000, logger })
  assert.is(node.peerId, peerId)
  assert.equal(await have(), { status: 200, bits: [0xe0] })
  const res = await fetch(`${node.http}/chunk/${chunkIds[1]}`)
  assert.equal(Buffer.from(await res.arrayBuffer()), Buffer.from(chunks[1]))
  await waitFor('a join reporting the egress cap', () => seen.some(m => m.type === 'join' && m.egressCap === 1_000_000))
})

test('a delete order forgets the content and removes its blobs', async () => {
  const reply = await order(manager, { type: 'delete', blobs: chunkIds, contents: [contentId] })
  assert.is(reply.type, 'deleted')
  assert.equal([...reply.removed].sort(), [contentId, ...chunkIds].sort())
  assert.equal(await have(), { status: 404 })
  for (const id of chunkIds) assert.is(await chunkStatus(id), 404)
  const health = await (await fetch(`${node.http}/health`)).json() as Record<string, unknown>
  assert.is(health.blobs, 0)
  assert.is(health.used, 0)
  assert.is(health.contents, 0)
})

async function storeAll (): Promise<void> {
  const reply = await order(manager, {
    type: 'store',
    blobs: [contentId, ...chunkIds].map(cid => ({ cid, sources: [`${blobUrl}/blob/${cid}`] })),
    contents: [contentId]
  })
  assert.ok(reply.results.every((r: any) => r.ok))
  assert.equal(await have(), { status: 200, bits: [0xe0] })
}

test('heartbeats list the held contents; an ack naming one makes the node drop its blobs and stop serving it', async () => {
  await storeAll()
  await waitFor('a heartbeat listing the content', () => seen.some(m => m.type === 'heartbeat' && (m as Heartbeat).held.includes(contentId)))
  answer.drop = [contentId]
  try {
    // The index forgets the content at once and the blobs go right after: wait for both.
    await waitFor('the content dropped', async () => (await have()).status === 404 && (await Promise.all(chunkIds.map(chunkStatus))).every(s => s === 404))
  } finally {
    answer.drop = []
  }
  for (const id of chunkIds) assert.is(await chunkStatus(id), 404)
  const health = await (await fetch(`${node.http}/health`)).json() as Record<string, unknown>
  assert.is(health.blobs, 0)
  const at = seen.length
  await waitFor('a later heartbeat without it', () => seen.slice(at).some(m => m.type === 'heartbeat' && !(m as Heartbeat).held.includes(contentId)))
})

test('a stranger\'s remove order is refused; the manager\'s stops the node, wipes its blobs and marks the directory', async () => {
  await storeAll()
  const refused = await order(stranger, { type: 'remove' })
  assert.is(refused.code, 'ERR_FORBIDDEN')
  assert.equal(await have(), { status: 200, bits: [0xe0] })

  const reply = await order(manager, { type: 'remove' })
  assert.equal(reply, { type: 'removed' })
  const end = await node.ended
  assert.is(end.kind, 'removed')
  assert.match(end.message, /blobs were deleted/)
  const serving = await fetch(`${node.http}/health`, { signal: AbortSignal.timeout(5000) }).then(() => true, () => false)
  assert.is(serving, false, 'the data plane is closed')
  assert.equal(await readdir(dataDir).then(names => names.includes('blobs')), false)
  assert.ok((await stat(join(dataDir, 'removed.json'))).isFile())
  // The same directory never serves again: a removed identity stays out.
  try {
    await startNode({ dataDir, manager: manager.getMultiaddrs()[0].toString(), joinToken: TOKEN, capacity: 10_000_000, maxEgress: Infinity, logger })
    assert.unreachable('a removed node started again')
  } catch (err: any) {
    assert.is(err.code, 'ERR_REMOVED')
    assert.match(err.message, /fresh --data directory/)
  }
})

test('ERR_REMOVED on a heartbeat ends a node too; with keepData its blobs stay', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-node-keep-'))
  const kept = await startNode({ dataDir: dir, manager: manager.getMultiaddrs()[0].toString(), joinToken: TOKEN, capacity: 10_000_000, maxEgress: Infinity, keepData: true, logger })
  try {
    const reply = await rpcCall(manager, parseMultiaddr(kept.multiaddrs[0]), CONTROL_PROTOCOL, {
      type: 'store', blobs: [{ cid: chunkIds[0], sources: [`${blobUrl}/blob/${chunkIds[0]}`] }], contents: []
    }, { timeout: 30_000 }) as any
    assert.is(reply.results[0].ok, true)
    answer.removed = true
    const end = await kept.ended
    assert.is(end.kind, 'removed')
    assert.match(end.message, /kept/)
    assert.ok((await readdir(join(dir, 'blobs'), { recursive: true })).some(name => name.endsWith(chunkIds[0])))
  } finally {
    answer.removed = false
    await kept.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test('a join refused for its token ends the node with the reason', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-node-refused-'))
  const refused = await startNode({ dataDir: dir, manager: manager.getMultiaddrs()[0].toString(), joinToken: 'wrong', capacity: 10_000_000, maxEgress: Infinity, logger })
  try {
    const end = await refused.ended
    assert.equal(end, { kind: 'refused', message: 'join refused: bad join token' })
  } finally {
    await refused.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

test.run()
