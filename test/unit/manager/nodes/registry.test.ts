import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { UnauthorizedError } from '../../../../core/errors.ts'
import { silentLogger } from '../../../../core/log.ts'
import type { Heartbeat, JoinRequest } from '../../../../core/wire.ts'
import { Catalog } from '../../../../manager/catalog/catalog.ts'
import type { SqlEngine } from '../../../../manager/catalog/engine.ts'
import { NodeRegistry } from '../../../../manager/nodes/node-registry.ts'
import { TokenStore } from '../../../../manager/catalog/tokens.ts'
import { eachEngine } from '../../../support/catalog-engines.ts'

const peers: string[] = []
for (let i = 0; i < 2; i++) peers.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())

async function setup (open: () => Promise<SqlEngine>): Promise<{ registry: NodeRegistry, catalog: Catalog, clock: { now: number }, close: () => Promise<void> }> {
  const db = await open()
  const catalog = new Catalog(db)
  const tokens = new TokenStore(db, () => {})
  await tokens.register('join', 'join-token')
  await tokens.register('publisher', 'publisher-token')
  const clock = { now: 1_000_000 }
  const registry = new NodeRegistry({ catalog, tokens, logger: silentLogger(), now: () => clock.now, addressesOf: async () => ['/ip4/127.0.0.1/tcp/4001'] }, { heartbeatMs: 1000, deadNodeMs: 3000 })
  return { registry, catalog, clock, close: async () => { await db.close() } }
}

const join_: JoinRequest = { type: 'join', token: 'join-token', http: 'http://127.0.0.1:9001', zone: 'eu', capacity: 5e9, egressCap: 1e7 }
function beat (used: number): Heartbeat {
  return { type: 'heartbeat', http: 'http://127.0.0.1:9001', capacity: 5e9, used, egressRate: 1234.5, blobs: 3, contents: {}, held: [] }
}

eachEngine(test, 'a node joins with a join token and is recorded alive, with an event', async (open) => {
  const { registry, catalog, close } = await setup(open)
  const reply = await registry.handle(join_, peers[0])
  assert.equal(reply, { type: 'joined', heartbeatMs: 1000 })
  const [node] = (await registry.list())
  assert.is(node.peerId, peers[0])
  assert.is(node.state, 'alive')
  assert.is(node.zone, 'eu')
  assert.is(node.capacity, 5e9)
  assert.equal(node.addrs, ['/ip4/127.0.0.1/tcp/4001'])
  assert.equal((await catalog.listEvents(10)).map(e => [e.kind, e.node]), [['node-joined', peers[0]]])
  await close()
})

eachEngine(test, 'a wrong join token, or a publisher token, is refused and nothing is recorded', async (open) => {
  const { registry, catalog, close } = await setup(open)
  for (const token of ['nope', 'publisher-token', '']) {
    try {
      await registry.handle({ ...join_, token }, peers[0])
      assert.unreachable('join accepted')
    } catch (err) {
      assert.instance(err, UnauthorizedError)
    }
  }
  assert.equal(await registry.list(), [])
  assert.equal(await catalog.listEvents(10), [])
  await close()
})

eachEngine(test, 'a heartbeat from an unknown peer asks it to join again', async (open) => {
  const { registry, close } = await setup(open)
  assert.equal(await registry.handle(beat(0), peers[1]), { type: 'ack', known: false, drop: [] })
  assert.equal(await registry.list(), [])
  await close()
})

eachEngine(test, 'heartbeats update the figures; silence past the deadline kills; a heartbeat revives', async (open) => {
  const { registry, catalog, clock, close } = await setup(open)
  await registry.handle(join_, peers[0])
  await registry.handle(join_, peers[1])
  clock.now += 1000
  assert.equal(await registry.handle(beat(42), peers[0]), { type: 'ack', known: true, drop: [] })
  const n0 = (await registry.list()).find(n => n.peerId === peers[0])
  assert.is(n0?.used, 42)
  assert.is(n0?.egressRate, 1234.5)
  assert.is(n0?.blobs, 3)
  assert.is(n0?.lastSeen, clock.now)

  // peers[1] last spoke at the start; peers[0] a second later. 3.5 s in, only peers[1] is past 3 s.
  clock.now += 2500
  assert.equal(await registry.sweep(), [peers[1]])
  assert.equal(await registry.countByState(), { alive: 1, dead: 1 })
  assert.equal(await registry.sweep(), [], 'a dead node dies once')
  clock.now += 1000
  assert.equal(await registry.sweep(), [peers[0]])

  assert.equal(await registry.handle(beat(50), peers[1]), { type: 'ack', known: true, drop: [] })
  assert.is((await registry.list()).find(n => n.peerId === peers[1])?.state, 'alive')
  const kinds = (await catalog.listEvents(10)).map(e => `${e.kind} ${e.node === peers[0] ? 0 : 1}`)
  assert.equal(kinds, ['node-alive 1', 'node-dead 0', 'node-dead 1', 'node-joined 1', 'node-joined 0'])
  await close()
})

eachEngine(test, 'dead and draining nodes are offered to placement with their state', async (open) => {
  const { registry, catalog, close } = await setup(open)
  await registry.handle(join_, peers[0])
  await registry.handle(join_, peers[1])
  await catalog.setNodeState(peers[1], 'draining')
  await registry.handle(join_, peers[1])
  const states = Object.fromEntries((await registry.candidates()).map(c => [c.peerId, c.state]))
  assert.is(states[peers[0]], 'alive')
  assert.is(states[peers[1]], 'draining', 'rejoining does not cancel a drain')
  assert.ok((await registry.candidates()).every(c => c.kadKey?.length === 32))
  await close()
})

test.run()
