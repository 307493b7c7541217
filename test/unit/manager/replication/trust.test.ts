/**
 * Claims proven before they count: bad-copy reports verified by fetching the
 * copy, suspect copies never spare, demand capped by the node's own egress
 * cap, and the signed node list.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { CdnError, ConflictError } from '../../../../core/errors.ts'
import { chunkCid } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import { verifyRecord, type NodeListBody } from '../../../../core/signed-record.ts'
import { ActionRunner } from '../../../../manager/replication/action-runner.ts'
import { DemandTracker } from '../../../../manager/replication/demand-tracker.ts'
import { NodeAdmin } from '../../../../manager/nodes/node-admin.ts'
import { NodeListSigner } from '../../../../manager/nodes/node-list.ts'
import { cappedDemand, NodeRegistry } from '../../../../manager/nodes/node-registry.ts'
import { PoolSnapshotter } from '../../../../manager/replication/pool-snapshot.ts'
import { TokenBuckets } from '../../../../manager/api/rate-limit.ts'
import { DEFAULT_POLICY, reconcile } from '../../../../manager/replication/replication-policy.ts'
import { ReportVerifier } from '../../../../manager/replication/report-verifier.ts'
import { TokenStore } from '../../../../manager/catalog/tokens.ts'
import { confirmedLive, makePool, MANAGER_URL, type TestPool } from '../pool-fixture.ts'

const logger = silentLogger()

// ---- a node data plane that can lie --------------------------------------------

type Behaviour = 'good' | 'corrupt' | 'missing' | 'broken'

interface FakePlane { url: string, server: Server, behaviour: Behaviour, blobs: Map<string, Uint8Array>, fetches: number }

async function fakePlane (): Promise<FakePlane> {
  const plane: FakePlane = { url: '', server: createServer(), behaviour: 'good', blobs: new Map(), fetches: 0 }
  plane.server.on('request', (req, res) => {
    plane.fetches++
    const id = (req.url ?? '').replace(/^\/chunk\//, '')
    const blob = plane.blobs.get(id)
    if (plane.behaviour === 'missing' || blob == null) { res.writeHead(404).end(); return }
    if (plane.behaviour === 'broken') { res.writeHead(500).end(); return }
    const body = plane.behaviour === 'corrupt' ? Buffer.from(blob).map((b, i) => i === 3 ? b ^ 0xff : b) : blob
    res.writeHead(200, { 'content-length': body.length }).end(body)
  })
  await new Promise<void>(resolve => plane.server.listen(0, '127.0.0.1', resolve))
  plane.url = `http://127.0.0.1:${(plane.server.address() as AddressInfo).port}`
  return plane
}

async function closePlane (p: FakePlane): Promise<void> {
  await new Promise<void>(resolve => { p.server.close(() => { resolve() }); p.server.closeAllConnections() })
}

/** A content of one real chunk held (confirmed) by peers 0 and 1, peer 0's data plane being `plane`. */
async function reportedPool (plane: FakePlane): Promise<{ pool: TestPool, id: string, chunk: string }> {
  const pool = await makePool(3)
  const c = await pool.addContent([[0, 1]], { replicas: 2 })
  // The fixture's chunk ids are random; give peer 0 a real blob under its id and point it at the fake plane.
  const blob = randomBytes(1024)
  const chunk = chunkCid(blob).toString()
  await pool.db.prepare('UPDATE chunks SET cid = ?, size = ? WHERE cid = ?').run(chunk, blob.length, c.chunks[0])
  await pool.db.prepare('UPDATE copies SET cid = ? WHERE cid = ?').run(chunk, c.chunks[0])
  const n0 = (await pool.catalog.getNode(pool.peers[0]))!
  await pool.catalog.joinNode({ peerId: n0.peerId, http: plane.url, zone: null, capacity: n0.capacity, egressCap: null, addrs: [] }, Date.now())
  plane.blobs.set(chunk, blob)
  return { pool, id: c.id, chunk }
}

function verifier (pool: TestPool, init: ConstructorParameters<typeof ReportVerifier>[1] = {}): ReportVerifier {
  return new ReportVerifier({ catalog: pool.catalog, logger }, { timeoutMs: 5000, ...init })
}

async function kinds (pool: TestPool): Promise<string[]> {
  return (await pool.catalog.listEvents(100)).map(e => e.kind).filter(k => k.startsWith('bad-copy'))
}

test('twelve forged reports change nothing: the copy is fetched once, found intact, and stays counted', async () => {
  const plane = await fakePlane()
  const { pool, id, chunk } = await reportedPool(plane)
  const v = verifier(pool, { burst: 20 })
  try {
    for (let i = 0; i < 12; i++) {
      await v.submit({ content: id, chunk, node: pool.peers[0], reason: 'hash mismatch' }, '10.0.0.1')
      await v.idle()
    }
    assert.is(plane.fetches, 1, 'one blob fetch, then the intact verdict is remembered')
    assert.is(await pool.catalog.copyState(chunk, pool.peers[0]), 'confirmed')
    assert.equal((await confirmedLive(pool.catalog, chunk)).sort(), [pool.peers[0], pool.peers[1]].sort())
    assert.is((await pool.catalog.listVisible())[0].copies.min, 2)
    assert.equal(await kinds(pool), Array(12).fill('bad-copy-rejected'))
    const first = (await pool.catalog.listEvents(100)).at(-1)!
    assert.equal(first.detail, { chunk, reason: 'hash mismatch', verdict: 'intact' })
  } finally {
    await v.close()
    await closePlane(plane)
    await pool.close()
  }
})

test('a copy that really is bad (other bytes, or a 404 where the catalog says it is) turns suspect', async () => {
  for (const behaviour of ['corrupt', 'missing'] as const) {
    const plane = await fakePlane()
    const { pool, id, chunk } = await reportedPool(plane)
    plane.behaviour = behaviour
    const v = verifier(pool)
    try {
      assert.equal(await v.submit({ content: id, chunk, node: pool.peers[0], reason: 'hash mismatch' }, '10.0.0.1'), { verifying: true })
      await v.idle()
      assert.is(await pool.catalog.copyState(chunk, pool.peers[0]), 'suspect', behaviour)
      assert.is((await pool.catalog.listVisible())[0].copies.min, 1)
      const [event] = (await pool.catalog.listEvents(1))
      assert.is(event.kind, 'bad-copy-verified')
      assert.equal(event.detail, { chunk, reason: 'hash mismatch', verdict: behaviour, marked: true })
    } finally {
      await v.close()
      await closePlane(plane)
      await pool.close()
    }
  }
})

test('a node that cannot be asked changes nothing; reports of copies the catalog does not count are rejected at once', async () => {
  const plane = await fakePlane()
  const { pool, id, chunk } = await reportedPool(plane)
  plane.behaviour = 'broken'
  const v = verifier(pool)
  try {
    await v.submit({ content: id, chunk, node: pool.peers[0], reason: 'x' }, '10.0.0.1')
    await v.idle()
    assert.is(await pool.catalog.copyState(chunk, pool.peers[0]), 'confirmed')
    assert.equal(await kinds(pool), ['bad-copy-unverified'])
    // peer 2 holds no copy: nothing to fetch, nothing to mark
    assert.equal(await v.submit({ content: id, chunk, node: pool.peers[2], reason: 'x' }, '10.0.0.1'), { verifying: false, verdict: 'no-copy' })
    assert.is(plane.fetches, 1)
  } finally {
    await v.close()
    await closePlane(plane)
    await pool.close()
  }
})

test('reports are rate-limited per client address (429 past the burst), and checked against the catalog', async () => {
  const plane = await fakePlane()
  const { pool, id, chunk } = await reportedPool(plane)
  const v = verifier(pool, { burst: 3, ratePerSecond: 0.001 })
  try {
    const report = { content: id, chunk, node: pool.peers[0], reason: 'x' }
    for (let i = 0; i < 3; i++) await v.submit(report, '10.0.0.1')
    for (const client of ['10.0.0.1', '10.0.0.1']) {
      try {
        await v.submit(report, client)
        assert.unreachable('past the burst')
      } catch (err) {
        assert.is((err as CdnError).status, 429)
        assert.is((err as CdnError).code, 'ERR_RATE_LIMITED')
      }
    }
    await v.submit(report, '10.0.0.2')
    await v.idle()
    assert.is(plane.fetches, 1, 'reports of one copy join one verification')
    try {
      await v.submit({ ...report, chunk: chunkCid(randomBytes(8)).toString() }, '10.0.0.3')
      assert.unreachable('a blob of another content')
    } catch (err) {
      assert.is((err as CdnError).status, 400)
    }
  } finally {
    await v.close()
    await closePlane(plane)
    await pool.close()
  }
  const buckets = new TokenBuckets({ ratePerSecond: 1, burst: 2, now: () => clock })
  let clock = 0
  assert.equal([(await buckets.take('a')), (await buckets.take('a')), (await buckets.take('a'))], [true, true, false])
  clock = 1000
  assert.equal([(await buckets.take('a')), (await buckets.take('a'))], [true, false])
})

// ---- suspect copies are never spare ----------------------------------------------

function admin (pool: TestPool): NodeAdmin {
  return new NodeAdmin({ catalog: pool.catalog, logger }, { minCopies: 2, diskHighWater: 0.9, egressHighWater: 0.9, heartbeatMs: 1000 })
}

test('suspect copies never count as spare: no removal, drain, trim or delete leaves fewer than the minimum good copies', async () => {
  const pool = await makePool(5)
  const { catalog, peers, nodes } = pool
  // One good copy (peer 0) and two suspect ones (peers 1, 2) of the chunk: a forged flood of old would have left this.
  const c = await pool.addContent([[0, 1, 2]], { replicas: 2 })
  await catalog.markSuspect(c.chunks[0], peers[1])
  await catalog.markSuspect(c.chunks[0], peers[2])
  const a = admin(pool)
  for (const [peer, last] of [[peers[0], true], [peers[1], false]] as const) {
    try {
      await a.remove(peer, 'op')
      assert.unreachable(`removed ${peer}`)
    } catch (err) {
      assert.instance(err, ConflictError)
      assert.match((err as Error).message, last ? /holds the last copies of 1 blobs/ : /still needs/)
      assert.match((err as Error).message, /drain it first/)
    }
  }

  // The runner refuses a delete of the one good copy whatever the policy said.
  const runner = new ActionRunner({ catalog, nodes, manifestUrl: id => `${MANAGER_URL}/manifest/${id}`, logger }, { minCopies: 2 })
  runner.submit([{ kind: 'delete', reason: 'trim', content: c.id, cid: c.chunks[0], node: peers[0] }])
  await runner.idle()
  assert.is(await catalog.copyState(c.chunks[0], peers[0]), 'confirmed')
  assert.ok(nodes.disk(peers[0]).has(c.chunks[0]))
  assert.ok((await catalog.listEvents(5)).some(e => e.kind === 'delete-refused' && e.node === peers[0]))

  // The policy, seeing node 0 drain, plans copies first and no delete of the good copy.
  await a.drain(peers[0], 'op')
  const snapshots = new PoolSnapshotter({ catalog, demand: new DemandTracker(), moves: runner })
  const round = async (): Promise<ReturnType<typeof reconcile>> => {
    const snap = await snapshots.take(Date.now(), DEFAULT_POLICY.uncappedEgress)
    return reconcile({ nodes: snap.nodes, contents: snap.contents, settings: { ...DEFAULT_POLICY, minCopies: 2 }, now: Date.now() })
  }
  const first = await round()
  assert.not.ok(first.actions.some(x => x.kind === 'delete' && x.node === peers[0]), 'the good copy stays while it is one of too few')
  assert.ok(first.actions.filter(x => x.kind === 'copy').length >= 2)
  runner.submit(first.actions.filter(x => x.kind !== 'expire') as any)
  await runner.idle()
  // Two good copies elsewhere now: the suspect ones and the draining one may go, never below two good.
  for (let i = 0; i < 4; i++) {
    runner.submit((await round()).actions.filter(x => x.kind !== 'expire') as any)
    await runner.idle()
    assert.ok((await confirmedLive(catalog, c.chunks[0])).length >= 2)
  }
  assert.equal(await catalog.copyState(c.chunks[0], peers[1]), undefined, 'the suspect copy was deleted once it was spare')
  assert.equal(await a.remove(peers[1], 'op'), { peerId: peers[1], removed: true })
  await pool.close()
})

// ---- demand is capped by the node's own egress cap ----------------------------------------

test("a node claiming 10 GB/s behind a 25 MB/s cap counts as 25 MB/s, per content alike", async () => {
  const claim = { egressRate: 10e9, egressCap: 25e6, contents: { a: { requests: 5, bytes: 8e9 }, b: { requests: 1, bytes: 2e9 } } }
  const capped = cappedDemand(claim)
  assert.is(capped.egressRate, 25e6)
  assert.is(Math.round(capped.contents.a.bytes), 20e6)
  assert.is(Math.round(capped.contents.b.bytes), 5e6)
  assert.is(capped.contents.a.requests, 5)
  assert.equal(cappedDemand({ egressRate: 1e6, egressCap: 25e6, contents: { a: { requests: 1, bytes: 1e6 } } }).contents.a.bytes, 1e6, 'honest figures pass unchanged')
  assert.is(cappedDemand({ egressRate: 10e9, contents: {} }, 100e6).egressRate, 100e6, 'an uncapped node adds at most the uncapped egress')
  assert.is(cappedDemand({ egressRate: 10e9, contents: {} }).egressRate, 10e9)

  const pool = await makePool(1)
  const tokens = new TokenStore(pool.db, () => {})
  const demand = new DemandTracker({ smoothing: 1 })
  const registry = new NodeRegistry({ catalog: pool.catalog, tokens, logger, onHeartbeat: (node, hb, now) => { demand.record(node, hb, now) } }, { heartbeatMs: 1000, deadNodeMs: 3000 })
  const content = (await pool.addContent([[0]], { replicas: 1 })).id
  await registry.handle({ type: 'heartbeat', http: 'http://node-0.test', capacity: 1e9, used: 0, egressCap: 25e6, egressRate: 10e9, blobs: 2, contents: { [content]: { requests: 9, bytes: 10e9 } }, held: [content] }, pool.peers[0])
  const now = Date.now()
  assert.is(demand.egressOf(pool.peers[0], now), 25e6)
  assert.is(demand.byContent(now).get(content)?.bytes, 25e6)
  assert.is((await pool.catalog.getNode(pool.peers[0]))!.egressRate, 25e6)
  await pool.close()
})

// ---- the signed node list ------------------------------------------------------------

test('the node list is signed by the pool identity, lists every node not removed, and its sequence grows', async () => {
  const pool = await makePool(3)
  const key = await generateKeyPair('Ed25519')
  const peerId = peerIdFromPrivateKey(key).toString()
  let clock = 1_700_000_000_000
  const signer = new NodeListSigner({ catalog: pool.catalog, signer: { privateKey: key, peerId }, now: () => clock })
  await pool.catalog.setNodeState(pool.peers[2], 'dead')
  const first = await verifyRecord<NodeListBody>(await signer.current(), { kind: 'node-list', trusted: [peerId], now: clock })
  assert.equal(first.body.nodes.map(n => n.peerId).sort(), [...pool.peers].sort(), 'dead nodes stay listed')
  assert.is(first.body.exp, clock + 3_600_000)
  assert.is(first.body.nodes.find(n => n.peerId === pool.peers[0])?.http, 'http://node-0.test')
  await admin(pool).remove(pool.peers[1], 'op')
  const second = await verifyRecord<NodeListBody>(await signer.current(), { kind: 'node-list', trusted: [peerId], now: clock })
  assert.not.ok(second.body.nodes.some(n => n.peerId === pool.peers[1]), 'a removed node is gone at once')
  assert.ok(second.body.seq > first.body.seq)
  clock += 1000
  assert.is(await signer.current(), second.encoded, 'an unchanged pool reuses the list for a while')
  const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  try {
    await verifyRecord(second.encoded, { kind: 'node-list', trusted: [stranger] })
    assert.unreachable('verified under another identity')
  } catch (err) {
    assert.is((err as CdnError).status, 403)
  }
  await pool.close()
})

test.run()
