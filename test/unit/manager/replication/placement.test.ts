import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CapacityError } from '../../../../core/errors.ts'
import { chunkCid } from '../../../../core/ids.ts'
import { placeBlob, type PlacementCandidate } from '../../../../manager/replication/placement.ts'

const GB = 1e9
const MiB = 1024 * 1024

async function peerIds (n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())
  return out
}

function blob (i: number): ReturnType<typeof chunkCid> {
  const b = Buffer.alloc(8)
  b.writeUInt32BE(i, 0)
  return chunkCid(b)
}

function node (peerId: string, over: Partial<PlacementCandidate> = {}): PlacementCandidate {
  return { peerId, state: 'alive', capacity: 100 * GB, used: 0, ...over }
}

const ids = await peerIds(12)

test('returns R distinct nodes', () => {
  const nodes = ids.slice(0, 8).map(id => node(id))
  for (let i = 0; i < 50; i++) {
    const chosen = placeBlob(blob(i), nodes, 3, MiB)
    assert.is(chosen.length, 3)
    assert.is(new Set(chosen.map(c => c.peerId)).size, 3)
  }
})

test('never picks dead, draining or full nodes', () => {
  const nodes = [
    node(ids[0], { state: 'dead' }),
    node(ids[1], { state: 'draining' }),
    node(ids[2], { used: 100 * GB - 100 }),
    node(ids[3], { planned: 100 * GB }),
    node(ids[4]),
    node(ids[5]),
    node(ids[6])
  ]
  const banned = new Set(ids.slice(0, 4))
  for (let i = 0; i < 200; i++) {
    for (const c of placeBlob(blob(i), nodes, 3, MiB)) assert.not.ok(banned.has(c.peerId), `picked ${c.peerId}`)
  }
})

test('copies go to distinct zones when zones are available', () => {
  const zones = ['a', 'a', 'a', 'b', 'b', 'c', 'c', 'c']
  const nodes = zones.map((zone, i) => node(ids[i], { zone }))
  for (let i = 0; i < 200; i++) {
    const chosen = placeBlob(blob(i), nodes, 3, MiB)
    assert.equal(new Set(chosen.map(c => c.zone)).size, 3)
  }
})

test('a zone repeats only when no other zone has room', () => {
  const nodes = [
    node(ids[0], { zone: 'a' }),
    node(ids[1], { zone: 'a' }),
    node(ids[2], { zone: 'a' }),
    node(ids[3], { zone: 'b', used: 100 * GB }),
    node(ids[4], { zone: 'c' })
  ]
  for (let i = 0; i < 100; i++) {
    const chosen = placeBlob(blob(i), nodes, 3, MiB)
    assert.is(chosen.length, 3)
    assert.ok(chosen.some(c => c.zone === 'c'), 'the only other zone with room is used')
    assert.not.ok(chosen.some(c => c.peerId === ids[3]))
  }
})

test('zones already holding a copy are avoided when adding copies', () => {
  const nodes = ['a', 'a', 'b', 'c'].map((zone, i) => node(ids[i], { zone }))
  for (let i = 0; i < 50; i++) {
    const [one] = placeBlob(blob(i), nodes, 1, MiB, { avoidZones: ['a', 'b'] })
    assert.is(one.zone, 'c')
  }
})

test('the same inputs give the same answer, whatever the candidate order', () => {
  const nodes = ids.slice(0, 10).map((id, i) => node(id, { used: i * GB }))
  const reversed = [...nodes].reverse()
  for (let i = 0; i < 100; i++) {
    const a = placeBlob(blob(i), nodes, 3, MiB).map(c => c.peerId)
    const b = placeBlob(blob(i), reversed, 3, MiB).map(c => c.peerId)
    assert.equal(a, b)
  }
})

test('load spreads in proportion to free capacity', () => {
  const free = [10, 10, 20, 20, 40, 40, 80, 80]
  for (const replicas of [1, 3]) {
    const nodes = free.map((f, i) => node(ids[i], { capacity: f * GB }))
    const counts = new Map<string, number>()
    const chunks = 2000
    for (let i = 0; i < chunks; i++) {
      for (const c of placeBlob(blob(i), nodes, replicas, MiB)) {
        counts.set(c.peerId, (counts.get(c.peerId) ?? 0) + 1)
        c.planned = (c.planned ?? 0) + MiB
      }
    }
    const total = free.reduce((a, b) => a + b, 0)
    free.forEach((f, i) => {
      const fair = chunks * replicas * f / total
      const got = counts.get(ids[i]) ?? 0
      assert.ok(got <= 2 * fair, `R=${replicas}: node ${i} got ${got}, fair share ${fair.toFixed(0)}`)
      assert.ok(got >= fair / 2, `R=${replicas}: node ${i} got ${got}, fair share ${fair.toFixed(0)}`)
    })
  }
})

test('fewer than R eligible nodes is a CapacityError', () => {
  const nodes = [node(ids[0]), node(ids[1]), node(ids[2], { state: 'dead' }), node(ids[3], { used: 100 * GB })]
  assert.throws(() => placeBlob(blob(1), nodes, 3, MiB), (e: unknown) => e instanceof CapacityError)
  assert.throws(() => placeBlob(blob(1), [], 1, MiB), (e: unknown) => e instanceof CapacityError)
  assert.is(placeBlob(blob(1), nodes, 2, MiB).length, 2)
})

test('a node listed twice counts once', () => {
  const nodes = [node(ids[0]), node(ids[0]), node(ids[1])]
  assert.throws(() => placeBlob(blob(1), nodes, 3, MiB), (e: unknown) => e instanceof CapacityError)
})

test.run()
