import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Registry } from 'prom-client'
import { CdnError, ConflictError, NotFoundError } from '../../../../core/errors.ts'
import { silentLogger } from '../../../../core/log.ts'
import { createApiHandler } from '../../../../manager/api/api.ts'
import { parsePublishHeaders } from '../../../../manager/api/wire.ts'
import { NodeAdmin } from '../../../../manager/nodes/node-admin.ts'
import { NodeRegistry } from '../../../../manager/nodes/node-registry.ts'
import { TokenStore } from '../../../../manager/catalog/tokens.ts'
import { makePool, type TestPool } from '../pool-fixture.ts'
import { rejects } from '../../../support/rejects.ts'

function admin (pool: TestPool, now = Date.now): NodeAdmin {
  return new NodeAdmin({ catalog: pool.catalog, logger: silentLogger(), now }, { minCopies: 2, diskHighWater: 0.9, egressHighWater: 0.9, heartbeatMs: 1000 })
}

test('a drained node stays draining through death and return; draining twice is harmless', async () => {
  const pool = await makePool(3)
  const { catalog, peers } = pool
  const a = admin(pool)
  const beat = async (peer: string): Promise<void> => { await catalog.heartbeatNode(peer, { http: 'http://x.test', capacity: 1e9, used: 0, egressCap: null, egressRate: 0, blobs: 0 }, Date.now()) }
  assert.is((await a.drain(peers[0], 'op')).state, 'draining')
  await a.drain(peers[0], 'op')
  assert.is((await catalog.listEvents(10)).filter(e => e.kind === 'node-draining').length, 1)
  await catalog.setNodeState(peers[0], 'dead')
  await beat(peers[0])
  assert.is((await catalog.getNode(peers[0]))!.state, 'draining', 'back from the dead, still draining')
  await catalog.setNodeState(peers[1], 'dead')
  await a.drain(peers[1], 'op')
  assert.is((await catalog.getNode(peers[1]))!.state, 'dead', 'a dead node stays dead')
  await beat(peers[1])
  assert.is((await catalog.getNode(peers[1]))!.state, 'draining', 'and drains when it returns')
  await rejects(async () => await a.drain('12D3KooWNoSuchNodeNoSuchNodeNoSuchNodeNoSuchNodeNoS', 'op'), (e: unknown) => e instanceof NotFoundError)
  await pool.close()
})

test('a node is not removed while some blob would fall below the minimum without it', async () => {
  const pool = await makePool(4)
  const { catalog, peers } = pool
  await pool.addContent([[0, 1, 2]])
  const needed = await pool.addContent([[0, 1]], { replicas: 2 })
  const a = admin(pool)
  try {
    await a.remove(peers[0], 'op')
    assert.unreachable('removed')
  } catch (err) {
    assert.instance(err, ConflictError)
    assert.match((err as Error).message, /drain it first/)
  }
  assert.ok(await catalog.getNode(peers[0]))
  // A node whose copies all exist twice elsewhere can go.
  assert.equal(await a.remove(peers[2], 'op'), { peerId: peers[2], removed: true })
  assert.is(await catalog.getNode(peers[2]), undefined)
  assert.is((await catalog.holdingsByNode()).get(peers[2]), undefined, 'its copy rows went with it')
  assert.ok(await catalog.isRemoved(peers[2]))
  assert.ok(needed.id)
  await pool.close()
})

test('a removed node cannot join again under its identity', async () => {
  const pool = await makePool(2)
  const { catalog, peers, db } = pool
  const tokens = new TokenStore(db, () => {})
  await tokens.register('join', 'join-token')
  const registry = new NodeRegistry({ catalog, tokens, logger: silentLogger() }, { heartbeatMs: 1000, deadNodeMs: 3000 })
  await admin(pool).remove(peers[1], 'op')
  for (const message of [
    { type: 'join' as const, token: 'join-token', http: 'http://127.0.0.1:1', capacity: 1e9 },
    { type: 'heartbeat' as const, http: 'http://127.0.0.1:1', capacity: 1e9, used: 0, egressRate: 0, blobs: 0, contents: {}, held: [] }
  ]) {
    try {
      await registry.handle(message, peers[1])
      assert.unreachable(`${message.type} accepted`)
    } catch (err) {
      assert.instance(err, CdnError)
      assert.is((err as CdnError).code, 'ERR_REMOVED', message.type)
    }
  }
  assert.is(await catalog.getNode(peers[1]), undefined)
  assert.ok((await catalog.listEvents(5)).some(e => e.kind === 'node-join-refused' && e.node === peers[1]))
  await pool.close()
})

test('health says what an operator should look at', async () => {
  const pool = await makePool(2)
  const { catalog, peers } = pool
  const clock = { now: Date.now() }
  const a = admin(pool, () => clock.now)
  const node = (await catalog.getNode(peers[0]))!
  const row = (over: object): any => ({ ...node, lastSeen: clock.now, ...over })
  assert.is(a.health(row({}), undefined), 'ok')
  assert.is(a.health(row({ used: 0.95e9 }), undefined), 'disk-high')
  assert.is(a.health(row({ egressCap: 100, egressRate: 95 }), undefined), 'egress-high')
  assert.is(a.health(row({ lastSeen: clock.now - 5000 }), undefined), 'late')
  assert.is(a.health(row({ state: 'dead' }), undefined), 'dead')
  assert.is(a.health(row({ state: 'draining' }), { copies: 3, contents: 1 }), 'draining')
  assert.is(a.health(row({ state: 'draining' }), undefined), 'drained')
  await pool.close()
})

test('the TTL header is seconds from 1 to a century', () => {
  assert.is(parsePublishHeaders({ 'x-cdn-ttl': '60' }).ttlSeconds, 60)
  assert.is(parsePublishHeaders({}).ttlSeconds, undefined)
  for (const bad of ['0', '-5', '1.5', 'soon', String(200 * 365 * 86400)]) {
    assert.throws(() => parsePublishHeaders({ 'x-cdn-ttl': bad }), /x-cdn-ttl/)
  }
})

test('node endpoints: drain and removal need an admin token, validate peer ids, and answer 202/409', async () => {
  const pool = await makePool(3)
  const { catalog, peers, db } = pool
  const tokens = new TokenStore(db, () => {})
  await tokens.register('admin', 'admin-token')
  await tokens.register('publisher', 'pub-token')
  const c = await pool.addContent([[0, 1]], { replicas: 2 })
  const handler = createApiHandler({
    catalog,
    tokens,
    keys: {} as any,
    capabilities: {} as any,
    staging: {} as any,
    publisher: {} as any,
    deleter: {} as any,
    metricsRegistry: new Registry(),
    metrics: {} as any,
    info: () => ({ peerId: 'm', multiaddrs: [], http: '', pool: 'm', managers: [] }),
    nodeAdmin: admin(pool),
    replication: () => ({ minCopies: 2, pendingActions: 0, lastRound: null }),
    reports: { submit: async () => ({ verifying: false }) },
    nodeList: async () => '',
    logger: silentLogger()
  })
  const server = createServer(handler)
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const call = async (method: string, path: string, token?: string): Promise<{ status: number, body: any }> => {
    const res = await fetch(`${base}${path}`, { method, headers: token != null ? { authorization: `Bearer ${token}` } : {} })
    return { status: res.status, body: res.headers.get('content-type')?.includes('json') === true ? await res.json() : await res.arrayBuffer() }
  }
  try {
    assert.is((await call('POST', `/api/nodes/${peers[0]}/drain`)).status, 401)
    assert.is((await call('POST', `/api/nodes/${peers[0]}/drain`, 'pub-token')).status, 403, 'a publisher may not drain nodes')
    assert.is((await call('DELETE', `/api/nodes/${peers[0]}`, 'pub-token')).status, 403, 'a publisher may not remove nodes')
    assert.is((await call('POST', '/api/nodes/not-a-peer/drain', 'admin-token')).status, 400)
    assert.is((await call('POST', '/api/nodes/12D3KooWNoSuchNodeNoSuchNodeNoSuchNodeNoSuchNodeNoS/drain', 'admin-token')).status, 400)
    const drained = await call('POST', `/api/nodes/${peers[2]}/drain`, 'admin-token')
    assert.is(drained.status, 202)
    assert.is(drained.body.node.state, 'draining')
    assert.is(drained.body.node.health, 'drained', 'node 2 holds nothing')

    const refused = await call('DELETE', `/api/nodes/${peers[0]}`, 'admin-token')
    assert.is(refused.status, 409)
    assert.is(refused.body.error.code, 'ERR_CONFLICT')
    assert.is((await call('DELETE', `/api/nodes/${peers[2]}`, 'admin-token')).status, 200)
    assert.is((await call('DELETE', `/api/nodes/${peers[2]}`, 'admin-token')).status, 404)

    assert.is((await call('GET', '/api/nodes')).status, 401, 'node list without a token')
    const listed = await call('GET', '/api/nodes', 'pub-token')
    const n0 = listed.body.nodes.find((n: any) => n.peerId === peers[0])
    assert.equal([n0.copies, n0.contents, n0.health], [2, 1, 'ok'])

    const health = await call('GET', '/api/health/replication', 'pub-token')
    assert.equal({ ...health.body, lastRound: undefined }, { contents: 1, chunks: 1, lowest: 2, belowMin: 0, belowBase: 0, minCopies: 2, pendingActions: 0, lastRound: undefined })

    const manifest = await call('GET', `/manifest/${c.id}`)
    assert.is(manifest.status, 200)
    assert.equal(Buffer.from(manifest.body), Buffer.from((await catalog.getVisible(c.id))!.manifest!))
    assert.is((await call('GET', `/manifest/${c.chunks[0]}`)).status, 400, 'a chunk id is no content id')
  } finally {
    await new Promise(resolve => server.close(resolve))
    await pool.close()
  }
})

test.run()
