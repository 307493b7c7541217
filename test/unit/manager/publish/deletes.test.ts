/**
 * Deletes that finish: tombstones, deletes owed to nodes that did not hear
 * them, the drop list a heartbeat's ack carries (deleted vs. a publish in
 * flight), and resuming after a restart.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { manifestCid } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import type { Heartbeat } from '../../../../core/wire.ts'
import { Catalog } from '../../../../manager/catalog/catalog.ts'
import { ContentDeleter } from '../../../../manager/publish/delete.ts'
import { ContentLifecycle } from '../../../../manager/catalog/content-lifecycle.ts'
import { KeyCustody } from '../../../../manager/catalog/key-custody.ts'
import { KeySealer } from '../../../../manager/catalog/key-sealing.ts'
import { NodeRegistry } from '../../../../manager/nodes/node-registry.ts'
import { TokenStore } from '../../../../manager/catalog/tokens.ts'
import { makePool, type TestPool } from '../pool-fixture.ts'

const logger = silentLogger()

function deleter (pool: TestPool, init: ConstructorParameters<typeof ContentDeleter>[1] = {}): ContentDeleter {
  return new ContentDeleter({ catalog: pool.catalog, lifecycle: new ContentLifecycle(pool.catalog, new KeyCustody(pool.db, new KeySealer(randomBytes(32)))), nodes: pool.nodes, logger }, init)
}

function registry (pool: TestPool): NodeRegistry {
  return new NodeRegistry({ catalog: pool.catalog, tokens: new TokenStore(pool.db, () => {}), logger }, { heartbeatMs: 1000, deadNodeMs: 3000 })
}

function beat (held: string[]): Heartbeat {
  return { type: 'heartbeat', http: 'http://node.test', capacity: 1e9, used: 0, egressRate: 0, blobs: 0, contents: {}, held }
}

const someContentId = (): string => manifestCid(randomBytes(16)).toString()

test('the ack drops deleted, expired and unknown contents, and never a visible one or a publish in flight', async () => {
  const pool = await makePool(2)
  const { catalog, peers } = pool
  const kept = (await pool.addContent([[0, 1]])).id
  const deleted = (await pool.addContent([[0, 1]])).id
  const expired = (await pool.addContent([[0, 1]], { expiresAt: Date.now() - 1000 })).id
  const later = (await pool.addContent([[0, 1]], { expiresAt: Date.now() + 3_600_000 })).id
  await deleter(pool).delete(deleted, 'op')
  assert.ok(await catalog.isTombstoned(deleted))
  // A publish in flight: its manifest copies are recorded under the upload before any node gets them.
  const inFlight = someContentId()
  await catalog.createUpload({ uploadId: 'upload-live', name: 'x', type: 'application/octet-stream', chunkSize: 1024, replicas: 2, createdAt: new Date().toISOString(), publisher: 'p' })
  await catalog.addCopy('upload-live', inFlight, peers[0], 'pending')
  assert.ok(await catalog.isPublishInFlight(inFlight))
  const unknown = someContentId()

  const ack = await registry(pool).handle(beat([kept, deleted, expired, later, inFlight, unknown]), peers[0])
  assert.equal(ack.type, 'ack')
  assert.equal(new Set((ack as any).drop), new Set([deleted, expired, unknown]))

  // The publish fails and is discarded: now that same id is a stray to drop.
  await catalog.dropContent('upload-live')
  const after = await registry(pool).handle(beat([inFlight]), peers[0])
  assert.equal((after as any).drop, [inFlight])
  await pool.close()
})

test('a delete is durable before its orders: a holder that missed its order is owed it until its heartbeat shows it gone', async () => {
  const pool = await makePool(3)
  const { catalog, peers, nodes } = pool
  const c = await pool.addContent([[0, 1], [1, 2]], { replicas: 2 })
  nodes.down.add(peers[1])
  const outcome = await deleter(pool).delete(c.id, 'op')
  assert.equal(outcome.unreachable, [peers[1]])
  assert.is(await catalog.getContent(c.id), undefined)
  assert.ok(await catalog.isTombstoned(c.id))
  assert.ok(nodes.disk(peers[0]).size === 0 && nodes.disk(peers[2]).size === 0, 'reachable holders emptied')
  assert.equal((await catalog.pendingDeletes()).map(p => p.node), [peers[1]])
  assert.equal(new Set((await catalog.pendingDeletes())[0].blobs), new Set([c.id, ...c.chunks]))

  // Back, it still lists the content: the ack tells it to drop; the debt stays until it is gone.
  nodes.down.delete(peers[1])
  const r = registry(pool)
  assert.equal((await r.handle(beat([c.id]), peers[1]) as any).drop, [c.id])
  assert.is((await catalog.pendingDeletes()).length, 1)
  assert.equal((await r.handle(beat([]), peers[1]) as any).drop, [])
  assert.is((await catalog.pendingDeletes()).length, 0)
  await pool.close()
})

test('a delete answers within its bound while a holder hangs; the order goes on in the background', async () => {
  const pool = await makePool(2)
  const { catalog, peers, nodes } = pool
  const c = await pool.addContent([[0, 1]], { replicas: 2 })
  let release!: () => void
  const hung = new Promise<void>((resolve) => { release = resolve })
  nodes.gate = async (peer) => { if (peer === peers[1]) await hung }
  const d = deleter(pool, { answerWithinMs: 100 })
  const outcome = await d.delete(c.id, 'op')
  assert.equal(outcome.unreachable, [peers[1]])
  assert.is(await catalog.getContent(c.id), undefined)
  release()
  await d.idle()
  assert.is(nodes.disk(peers[1]).size, 0)
  assert.equal(await catalog.pendingDeletes(), [])
  await pool.close()
})

test('after a restart, deletes a crash interrupted are sent again and finish', async () => {
  const pool = await makePool(3)
  const { catalog, peers, nodes } = pool
  const c = await pool.addContent([[0, 1, 2]], { replicas: 3 })
  // The crash: the delete's transaction committed, none of its orders went out.
  for (const p of peers) nodes.down.add(p)
  await deleter(pool, { answerWithinMs: 5000 }).delete(c.id, 'op')
  assert.is((await catalog.pendingDeletes()).length, 3)
  for (const p of peers) assert.ok(nodes.disk(p).size > 0)

  // The restarted manager opens the same database.
  for (const p of peers) nodes.down.delete(p)
  const db = await pool.reopen()
  const reopened = new Catalog(db)
  const resumed = new ContentDeleter({ catalog: reopened, lifecycle: new ContentLifecycle(reopened, new KeyCustody(db, new KeySealer(randomBytes(32)))), nodes, logger })
  assert.is(await resumed.resumePending(), 3)
  for (const p of peers) assert.is(nodes.disk(p).size, 0, `node ${p} emptied`)
  assert.equal(await reopened.pendingDeletes(), [])
  assert.ok((await reopened.listEvents(5)).some(e => e.kind === 'delete-resumed' && e.content === c.id && e.detail?.done === 3))
  assert.is(await resumed.resumePending(), 0, 'nothing left to resume')
  await db.close()
  await pool.close()
})

test('removing a node forgets what it was owed', async () => {
  const pool = await makePool(3)
  const { catalog, peers, nodes } = pool
  const c = await pool.addContent([[0, 1, 2]], { replicas: 2 })
  nodes.down.add(peers[2])
  await deleter(pool).delete(c.id, 'op')
  assert.is((await catalog.pendingDeletes()).length, 1)
  await catalog.removeNode(peers[2], Date.now())
  assert.equal(await catalog.pendingDeletes(), [])
  await pool.close()
})

test.run()
