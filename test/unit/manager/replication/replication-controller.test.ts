/**
 * The controller wired as the manager wires it (catalog → snapshot → policy
 * → runner → orders), against in-memory nodes, round by round. After every
 * order a check compares what the nodes really hold with the invariant.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../../../core/log.ts'
import { ActionRunner } from '../../../../manager/replication/action-runner.ts'
import { DemandTracker } from '../../../../manager/replication/demand-tracker.ts'
import { PoolSnapshotter } from '../../../../manager/replication/pool-snapshot.ts'
import { ReplicationController } from '../../../../manager/replication/replication-controller.ts'
import { confirmedLive, makePool, MANAGER_URL, type TestPool } from '../pool-fixture.ts'

const MIN = 2

interface Wired { controller: ReplicationController, runner: ActionRunner, demand: DemandTracker, expired: string[], violations: string[], rounds: (n?: number) => Promise<void> }

async function wire (pool: TestPool, policy: Record<string, number> = {}): Promise<Wired> {
  const demand = new DemandTracker()
  const runner = new ActionRunner({ catalog: pool.catalog, nodes: pool.nodes, manifestUrl: id => `${MANAGER_URL}/manifest/${id}`, logger: silentLogger() }, { minCopies: MIN })
  const snapshots = new PoolSnapshotter({ catalog: pool.catalog, demand, moves: runner })
  const expired: string[] = []
  const controller = new ReplicationController({
    snapshot: async (now, uncapped) => await snapshots.take(now, uncapped),
    runner,
    expire: async (id) => { expired.push(id); await pool.catalog.dropContent(id) },
    recover: async () => await pool.catalog.suspectPendingCopiesOfVisible(),
    logger: silentLogger()
  }, { intervalMs: 1000, policy: { minCopies: MIN, ...policy } })

  // What the nodes really hold, checked after every order: a live copy is one on a reachable node's disk.
  const violations: string[] = []
  const inner = pool.nodes.gate
  pool.nodes.gate = async (peer, order) => {
    await inner?.(peer, order)
    if (order.type !== 'delete') return
    for (const cid of order.blobs) {
      const others = pool.peers.filter(p => p !== peer && !pool.nodes.down.has(p) && pool.nodes.disk(p).has(cid)).length
      const content = (await pool.catalog.replicaContents()).find(c => c.id === cid)
      const isChunk = await pool.db.prepare('SELECT 1 FROM chunks WHERE cid = ?').get(cid) != null
      if ((isChunk || content?.chunkCount === 0) && others < MIN) violations.push(`delete of ${cid} on ${peer} leaves ${others}`)
    }
  }
  const rounds = async (n = 8): Promise<void> => {
    for (let i = 0; i < n; i++) {
      await pool.heartbeat()
      await controller.runOnce()
      await runner.idle()
    }
  }
  return { controller, runner, demand, expired, violations, rounds }
}

test('a dead node\'s chunks are copied back to the base count from the survivors', async () => {
  const pool = await makePool(6)
  const { catalog, nodes, peers } = pool
  const a = await pool.addContent([[0, 1, 2], [0, 3, 4], [1, 2, 5], [0, 4, 5]])
  const w = await wire(pool)
  await w.rounds(1)
  assert.is(w.controller.last?.copies, 0, 'nothing to do in a healthy pool')

  await catalog.setNodeState(peers[0], 'dead')
  nodes.down.add(peers[0])
  await w.rounds(3)
  for (const cid of a.chunks) {
    const live = await confirmedLive(catalog, cid)
    assert.is(live.length, 3, `chunk ${cid} back to 3`)
    assert.not.ok(live.includes(peers[0]))
    for (const p of live) assert.ok(nodes.disk(p).has(cid), 'the catalog\'s copies are on the disks')
  }
  assert.is(w.controller.last?.underReplicated, 0)
  assert.equal(w.violations, [])
  await pool.close()
})

test('a drained node ends empty; copies left it only once confirmed elsewhere', async () => {
  const pool = await makePool(5)
  const { catalog, nodes, peers } = pool
  const a = await pool.addContent([[0, 1, 2], [0, 2, 3], [0, 3, 4]])
  // An empty content is only its manifest: the manifest itself must move.
  const empty = await pool.addContent([], { manifestHolders: [0, 1, 2] })
  const w = await wire(pool)
  await catalog.setDrain(peers[0])
  await w.rounds(4)
  assert.is(nodes.disk(peers[0]).size, 0, 'nothing left on its disk')
  assert.is((await catalog.holdingsByNode()).get(peers[0]), undefined, 'nothing left in the catalog')
  for (const cid of [...a.chunks, empty.id]) assert.is((await confirmedLive(catalog, cid)).length, 3)
  assert.equal(w.violations, [])
  await pool.close()
})

test('an expired content is handed to the delete path once', async () => {
  const pool = await makePool(3)
  const old = await pool.addContent([[0, 1, 2]], { expiresAt: Date.now() - 1 })
  const fresh = await pool.addContent([[0, 1, 2]], { expiresAt: Date.now() + 3_600_000 })
  const w = await wire(pool)
  await w.rounds(3)
  assert.equal(w.expired, [old.id])
  assert.ok(await pool.catalog.getVisible(fresh.id))
  await pool.close()
})

test('demand beyond what the holders can serve adds copies; when it is gone, they are trimmed back to R', async () => {
  const pool = await makePool(8)
  const { catalog, peers } = pool
  const hot = await pool.addContent([[0, 1, 2]])
  const w = await wire(pool, { uncappedEgress: 10e6 })
  // Each holder serving 9 MB/s of a 10 MB/s assumed capacity: 27 MB/s wants ceil(27 / 6) = 5 copies.
  const feed = async (bytes: number): Promise<void> => { for (const p of peers) w.demand.record(p, { egressRate: 0, contents: (await confirmedLive(catalog, hot.chunks[0])).includes(p) ? { [hot.id]: { requests: 10, bytes } } : {} }, Date.now()) }
  for (let i = 0; i < 4; i++) {
    await feed(9e6)
    await w.rounds(1)
  }
  const mirrored = await confirmedLive(catalog, hot.chunks[0])
  assert.ok(mirrored.length > 3, `mirrored to ${mirrored.length}`)
  assert.ok((await catalog.listEvents(50)).some(e => e.kind === 'copies-added' && e.detail?.reason === 'mirror'))
  for (let i = 0; i < 10; i++) {
    await feed(0)
    await w.rounds(1)
  }
  assert.is((await confirmedLive(catalog, hot.chunks[0])).length, 3)
  assert.ok((await catalog.listEvents(50)).some(e => e.kind === 'copies-removed' && e.detail?.reason === 'trim'))
  assert.equal(w.violations, [])
  await pool.close()
})

test('nodes above the disk high-water mark shed to a newcomer and never deadlock on shared chunks', async () => {
  // Three small nodes that all hold every chunk, then a fourth joins.
  const pool = await makePool(4, { capacity: 12 * 1024 })
  const { catalog, nodes, peers } = pool
  await catalog.setNodeState(peers[3], 'dead')
  const a = await pool.addContent(Array.from({ length: 11 }, () => [0, 1, 2]))
  const w = await wire(pool)
  await w.rounds(2)
  assert.is(nodes.disk(peers[3]).size, 0, 'nowhere to shed while the pool is full')
  await catalog.setNodeState(peers[3], 'alive')
  await w.rounds(6)
  const used = (p: string): number => [...nodes.disk(p)].filter(b => a.chunks.includes(b)).length * 1024
  for (const p of peers.slice(0, 3)) assert.ok(used(p) <= 0.9 * 12 * 1024, `node sheds under its high-water mark (${used(p)})`)
  assert.ok(nodes.disk(peers[3]).size > 0)
  for (const cid of a.chunks) assert.is((await confirmedLive(catalog, cid)).length, 3)
  assert.equal(w.violations, [])
  await pool.close()
})

test('copies interrupted by a restart are recovered as suspect and cleaned up', async () => {
  const pool = await makePool(4)
  const { catalog, peers } = pool
  const a = await pool.addContent([[0, 1, 2]])
  // A copy order was out when the manager stopped: the node may or may not have the blob.
  await catalog.addCopy(a.id, a.chunks[0], peers[3], 'pending')
  pool.nodes.disk(peers[3]).add(a.chunks[0])
  const w = await wire(pool)
  await w.rounds(2)
  assert.is(await catalog.copyState(a.chunks[0], peers[3]), undefined, 'the unknown copy was deleted once safe')
  assert.not.ok(pool.nodes.disk(peers[3]).has(a.chunks[0]))
  assert.ok((await catalog.listEvents(10)).some(e => e.kind === 'copies-removed' && e.node === peers[3] && e.detail?.reason === 'bad-copy'))
  assert.is((await confirmedLive(catalog, a.chunks[0])).length, 3)
  await pool.close()
})

test.run()
