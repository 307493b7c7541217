/**
 * A real node (startNode) in a pool of two stand-in managers built here from
 * core/host.ts, over libp2p on loopback: it learns the pool and its manager
 * list from the configured manager, obeys both managers and nobody else,
 * moves its heartbeats to the second when the first stops, and after a
 * restart reaches the second although its configured manager is gone.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PeerId, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { rpcCall, serveRpc } from '../../../core/control-rpc.ts'
import { createHost, parseMultiaddr, type Host } from '../../../core/host.ts'
import { silentLogger } from '../../../core/log.ts'
import { signRecord, type ManagerListBody } from '../../../core/signed-record.ts'
import { CONTROL_PROTOCOL, parseNodeMessage } from '../../../core/wire.ts'
import { startNode, type NodeDaemon } from '../../../node/daemon.ts'

const logger = silentLogger()
const TOKEN = 'join-secret'

async function waitFor (what: string, check: () => boolean | Promise<boolean>, deadlineMs = 30_000): Promise<void> {
  const end = Date.now() + deadlineMs
  while (!await check()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`)
    await sleep(20)
  }
}

const poolKey = await generateKeyPair('Ed25519')
const poolId = peerIdFromPrivateKey(poolKey).toString()

/** A stand-in manager: takes joins and heartbeats, records who sent what, answers with the pool news it is given. */
interface Stand { host: Host, id: string, seen: Array<{ type: string, peer: string }> }
const news: { managers?: string } = {}

async function standIn (key: PrivateKey): Promise<Stand> {
  const host = await createHost({ privateKey: key, dhtServer: true })
  const stand: Stand = { host, id: host.peerId.toString(), seen: [] }
  await serveRpc(host, CONTROL_PROTOCOL, async (request: unknown, peer: PeerId) => {
    const msg = parseNodeMessage(request)
    stand.seen.push({ type: msg.type, peer: peer.toString() })
    const pool = { pool: poolId, ...news }
    if (msg.type === 'join') return msg.token === TOKEN ? { type: 'joined', heartbeatMs: 100, ...pool } : { type: 'error', code: 'ERR_UNAUTHORIZED', message: 'bad join token' }
    return { type: 'ack', known: true, drop: [], ...pool }
  }, { allow: () => true })
  return stand
}

let a: Stand
let b: Stand
let stranger: Host
let node: NodeDaemon
let dataDir = ''
let aAddr = ''

test.before(async () => {
  a = await standIn(await generateKeyPair('Ed25519'))
  b = await standIn(await generateKeyPair('Ed25519'))
  stranger = await createHost({ privateKey: await generateKeyPair('Ed25519'), dhtServer: false })
  const iat = Date.now()
  const body: ManagerListBody = {
    kind: 'manager-list',
    iss: poolId,
    iat,
    exp: iat + 24 * 3600_000,
    seq: 1,
    managers: [a, b].map(s => ({ peerId: s.id, multiaddrs: s.host.getMultiaddrs().map(String), http: 'http://127.0.0.1:9' }))
  }
  news.managers = await signRecord(body, poolKey)
  aAddr = a.host.getMultiaddrs()[0].toString()
  dataDir = await mkdtemp(join(tmpdir(), 'cdn-node-pool-'))
  node = await startNode({ dataDir, manager: aAddr, joinToken: TOKEN, capacity: 1_000_000, maxEgress: Infinity, logger })
})

test.after(async () => {
  await node?.stop()
  await stranger?.stop()
  await a?.host.stop()
  await b?.host.stop()
  await rm(dataDir, { recursive: true, force: true })
})

async function health (): Promise<Record<string, unknown>> {
  return await (await fetch(`${node.http}/health`)).json() as Record<string, unknown>
}

async function orderFrom (from: Host): Promise<any> {
  return await rpcCall(from, parseMultiaddr(node.multiaddrs[0]), CONTROL_PROTOCOL, { type: 'delete', blobs: [], contents: [] }, { timeout: 30_000 })
}

test('the node learns the pool from its configured manager and keeps it with the list in pool.json', async () => {
  await waitFor('a heartbeat to the configured manager', () => a.seen.some(m => m.type === 'heartbeat' && m.peer === node.peerId))
  await waitFor('the pool in /health', async () => (await health()).pool === poolId)
  assert.is((await health()).manager, a.id)
  const kept = JSON.parse(await readFile(join(dataDir, 'pool.json'), 'utf8'))
  assert.equal(kept, { pool: poolId, managers: news.managers })
})

test('orders from the listed manager are obeyed; from a stranger refused', async () => {
  assert.equal(await orderFrom(b.host), { type: 'deleted', removed: [] })
  const refused = await orderFrom(stranger)
  assert.is(refused.type, 'error')
  assert.is(refused.code, 'ERR_FORBIDDEN')
})

test('when the configured manager stops, heartbeats move to the other one', async () => {
  await a.host.stop()
  await waitFor('a heartbeat to the second manager', () => b.seen.some(m => m.type === 'heartbeat' && m.peer === node.peerId))
  await waitFor('/health naming the second manager', async () => (await health()).manager === b.id)
})

test('after a restart with the configured manager gone, the node joins the other one from the kept list', async () => {
  await node.stop()
  const before = b.seen.length
  node = await startNode({ dataDir, manager: aAddr, joinToken: TOKEN, capacity: 1_000_000, maxEgress: Infinity, logger })
  await waitFor('a join to the second manager', () => b.seen.slice(before).some(m => m.type === 'join' && m.peer === node.peerId))
  await waitFor('a heartbeat after it', () => b.seen.slice(before).some(m => m.type === 'heartbeat' && m.peer === node.peerId))
  assert.equal(await orderFrom(b.host), { type: 'deleted', removed: [] })
  assert.is((await health()).pool, poolId)
})

test.run()
