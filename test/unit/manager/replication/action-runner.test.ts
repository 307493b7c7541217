import { test } from 'uvu'
import * as assert from 'uvu/assert'
import type { CopyAction, DeleteAction } from '../../../../manager/replication/replication-policy.ts'
import { confirmedLive, makePool, MANAGER_URL, poolRunner, type TestPool } from '../pool-fixture.ts'

const runner = poolRunner

function copy (content: string, cid: string, from: string[], to: string, reason: CopyAction['reason'] = 'repair'): CopyAction {
  return { kind: 'copy', reason, content, cid, size: 1024, from, to }
}

function del (content: string, cid: string, node: string, reason: DeleteAction['reason'] = 'trim'): DeleteAction {
  return { kind: 'delete', reason, content, cid, node }
}

test('a first copy on a node brings the manifest along and indexes the content; later ones do not', async () => {
  const pool = await makePool(4)
  const { catalog, nodes, peers } = pool
  const c = await pool.addContent([[0, 1, 2], [0, 1, 2]])
  const r = runner(pool)
  await r.submit([copy(c.id, c.chunks[0], [peers[0]], peers[3])])
  assert.ok(r.isBusy(c.chunks[0]), 'busy while queued')
  await r.idle()
  assert.not.ok(r.isBusy(c.chunks[0]))
  const first = nodes.orders.at(-1)!.order as any
  assert.equal(first.contents, [c.id])
  assert.equal(first.blobs.map((b: any) => b.cid), [c.chunks[0], c.id])
  assert.equal(first.blobs[0].sources, [`http://node-0.test/chunk/${c.chunks[0]}`])
  assert.equal(first.blobs[1].sources, [`${MANAGER_URL}/manifest/${c.id}`])
  assert.is(await catalog.copyState(c.chunks[0], peers[3]), 'confirmed')
  assert.is(await catalog.copyState(c.id, peers[3]), 'confirmed')
  assert.ok(nodes.indexed.get(peers[3])!.has(c.id))

  await r.submit([copy(c.id, c.chunks[1], [peers[1]], peers[3])])
  await r.idle()
  const second = nodes.orders.at(-1)!.order as any
  assert.equal(second.contents, [])
  assert.equal(second.blobs.map((b: any) => b.cid), [c.chunks[1]])
  assert.is((await confirmedLive(catalog, c.chunks[1])).length, 4)
  assert.ok((await catalog.listEvents(10)).some(e => e.kind === 'copies-added' && e.node === peers[3] && e.detail?.reason === 'repair'))
  await pool.close()
})

test('a copy order that fails leaves its copies suspect: they do not count and get cleaned up later', async () => {
  const pool = await makePool(4)
  const { catalog, nodes, peers } = pool
  const c = await pool.addContent([[0, 1, 2]])
  nodes.down.add(peers[3])
  const outcomes: string[] = []
  const r = runner(pool, outcomes)
  await r.submit([copy(c.id, c.chunks[0], [peers[0]], peers[3])])
  await r.idle()
  assert.is(await catalog.copyState(c.chunks[0], peers[3]), 'suspect')
  assert.is((await confirmedLive(catalog, c.chunks[0])).length, 3)
  assert.equal(outcomes, ['copy:repair:failed'])
  await pool.close()
})

test('a blob no source can serve is not recorded', async () => {
  const pool = await makePool(4)
  const { catalog, peers } = pool
  const c = await pool.addContent([[0, 1, 2]])
  const r = runner(pool)
  // Node 3 is named as the source but holds nothing.
  await r.submit([copy(c.id, c.chunks[0], [peers[3]], peers[3])])
  await r.idle()
  assert.is(await catalog.copyState(c.chunks[0], peers[3]), undefined)
  await pool.close()
})

test('a delete that would leave fewer than the minimum is refused, whatever the policy said', async () => {
  const pool = await makePool(4)
  const { catalog, nodes, peers } = pool
  const c = await pool.addContent([[0, 1]], { replicas: 2 })
  const outcomes: string[] = []
  const r = runner(pool, outcomes)
  await r.submit([del(c.id, c.chunks[0], peers[0])])
  await r.idle()
  assert.is(nodes.orders.length, 0, 'no order sent')
  assert.is(await catalog.copyState(c.chunks[0], peers[0]), 'confirmed')
  assert.ok(nodes.disk(peers[0]).has(c.chunks[0]))
  assert.equal(outcomes, ['delete:trim:refused'])
  assert.ok((await catalog.listEvents(5)).some(e => e.kind === 'delete-refused' && e.node === peers[0]))
  await pool.close()
})

test('deleting the last chunk of a content on a node takes its manifest along and stops the node providing it', async () => {
  const pool = await makePool(4)
  const { catalog, nodes, peers } = pool
  const c = await pool.addContent([[0, 1, 2, 3], [0, 1, 2, 3]])
  const r = runner(pool)
  await r.submit([del(c.id, c.chunks[0], peers[0])])
  await r.idle()
  let order = nodes.orders.at(-1)!.order as any
  assert.equal(order.blobs, [c.chunks[0]])
  assert.equal(order.contents, [], 'a chunk of the content is still there: the manifest stays')
  await r.submit([del(c.id, c.chunks[1], peers[0])])
  await r.idle()
  order = nodes.orders.at(-1)!.order as any
  assert.equal(order.blobs, [c.chunks[1], c.id])
  assert.equal(order.contents, [c.id])
  assert.is(nodes.disk(peers[0]).size, 0)
  assert.not.ok(nodes.indexed.get(peers[0])!.has(c.id))
  assert.is(await catalog.copyState(c.id, peers[0]), undefined)
  assert.is((await catalog.holdingsByNode()).get(peers[0]), undefined, 'the catalog places nothing on the node')
  await pool.close()
})

test('a delete order that fails keeps the copy, as suspect', async () => {
  const pool = await makePool(4)
  const { catalog, nodes, peers } = pool
  const c = await pool.addContent([[0, 1, 2, 3]])
  nodes.down.add(peers[0])
  const r = runner(pool)
  await r.submit([del(c.id, c.chunks[0], peers[0])])
  await r.idle()
  assert.is(await catalog.copyState(c.chunks[0], peers[0]), 'suspect')
  assert.is(await catalog.copyState(c.id, peers[0]), 'suspect')
  await pool.close()
})

test('one order at a time per node; other nodes are not held up', async () => {
  const pool = await makePool(5)
  const { nodes, peers } = pool
  const c = await pool.addContent([[0, 1, 2], [0, 1, 2]])
  let release!: () => void
  const held = new Promise<void>(resolve => { release = resolve })
  const started: string[] = []
  nodes.gate = async (peer, order) => {
    started.push(`${order.type}@${peer === peers[3] ? 3 : 4}`)
    if (peer === peers[3] && started.length === 1) await held
  }
  const r = runner(pool)
  await r.submit([copy(c.id, c.chunks[0], [peers[0]], peers[3])])
  await r.submit([del(c.id, c.chunks[0], peers[3], 'migrate'), copy(c.id, c.chunks[1], [peers[0]], peers[4])])
  await new Promise(resolve => setTimeout(resolve, 20))
  assert.equal(started, ['store@3', 'store@4'], 'the delete for node 3 waits for its store; node 4 goes ahead')
  release()
  await r.idle()
  assert.equal(started, ['store@3', 'store@4', 'delete@3'])
  await pool.close()
})

test('copies of a content deleted while they travelled are removed from the node', async () => {
  const pool = await makePool(4)
  const { catalog, nodes, peers } = pool
  const c = await pool.addContent([[0, 1, 2]])
  nodes.gate = async (_peer, order) => {
    if (order.type === 'store') await catalog.dropContent(c.id)
  }
  const r = runner(pool)
  await r.submit([copy(c.id, c.chunks[0], [peers[0]], peers[3])])
  await r.idle()
  const last = nodes.orders.at(-1)!
  assert.is(last.order.type, 'delete')
  assert.is(last.peer, peers[3])
  assert.is(nodes.disk(peers[3]).size, 0)
  await pool.close()
})

test('disk use changed by finished actions is counted until the node reports it', async () => {
  const pool = await makePool(4)
  const { peers } = pool
  const c = await pool.addContent([[0, 1, 2]])
  const r = runner(pool)
  const before = Date.now() - 1
  await r.submit([copy(c.id, c.chunks[0], [peers[0]], peers[3])])
  assert.is(r.usageChange(peers[3], before), 1024, 'a copy on its way already counts')
  await r.idle()
  assert.ok(r.usageChange(peers[3], before) > 1024, 'the chunk and the manifest landed')
  assert.is(r.usageChange(peers[3], Date.now() + 1), 0, 'a later heartbeat includes them')
  await pool.close()
})

test.run()
