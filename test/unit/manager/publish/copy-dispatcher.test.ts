/**
 * The copy dispatcher with in-memory nodes: bounded orders and batches
 * (what keeps the manager's memory and staging flat during a huge upload),
 * backpressure on the upload, and re-placement of failed copies.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CdnError, UpstreamError } from '../../../../core/errors.ts'
import { chunkCid } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import type { Deleted, StoreOrder, Stored } from '../../../../core/wire.ts'
import { CopyDispatcher } from '../../../../manager/publish/copy-dispatcher.ts'
import type { NodeClient, OrderOptions } from '../../../../manager/nodes/node-client.ts'
import type { PlacementCandidate } from '../../../../manager/replication/placement.ts'

const peers: string[] = []
for (let i = 0; i < 4; i++) peers.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())
const pool: PlacementCandidate[] = peers.map(peerId => ({ peerId, state: 'alive', capacity: 1e12, used: 0 }))

function blob (i: number): ReturnType<typeof chunkCid> {
  return chunkCid(Buffer.from(`blob ${i}`))
}

/** Nodes whose store orders wait until released; tracks what the dispatcher asks of them. */
class FakeNodes implements NodeClient {
  inFlight = 0
  maxInFlight = 0
  largestOrder = 0
  held = new Map<string, Set<string>>()
  failing = new Set<string>()
  private waiters: Array<() => void> = []
  autoRelease = true

  async store (peerId: string, order: StoreOrder, _options?: OrderOptions): Promise<Stored> {
    this.inFlight++
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight)
    this.largestOrder = Math.max(this.largestOrder, order.blobs.length)
    try {
      if (!this.autoRelease) await new Promise<void>(resolve => this.waiters.push(resolve))
      else await Promise.resolve()
      const ok = !this.failing.has(peerId)
      if (ok) {
        const set = this.held.get(peerId) ?? new Set()
        for (const b of order.blobs) set.add(b.cid)
        this.held.set(peerId, set)
      }
      return { type: 'stored', results: order.blobs.map(b => ({ cid: b.cid, ok, ...(ok ? {} : { error: 'no' }) })) }
    } finally {
      this.inFlight--
    }
  }

  async delete (): Promise<Deleted> {
    return { type: 'deleted', removed: [] }
  }

  releaseAll (): void {
    this.autoRelease = true
    for (const w of this.waiters.splice(0)) w()
  }

  copiesOf (cid: string): string[] {
    return [...this.held].filter(([, s]) => s.has(cid)).map(([p]) => p)
  }
}

function dispatcher (nodes: FakeNodes, replicas = 2, signal = new AbortController().signal): { d: CopyDispatcher, rows: Map<string, string> } {
  const rows = new Map<string, string>()
  const d = new CopyDispatcher({
    nodes,
    catalog: {
      addCopy: async (_content, cid, node, state) => { rows.set(`${cid} ${node}`, state ?? 'pending') },
      confirmCopy: async (cid, node) => { rows.set(`${cid} ${node}`, 'confirmed') },
      removeCopy: async (cid, node) => { rows.delete(`${cid} ${node}`) }
    },
    sourceUrl: cid => `http://127.0.0.1:1/staging/${cid}`,
    logger: silentLogger()
  }, { content: 'upload-x', replicas, candidates: pool, signal, blobsPerOrder: 4, ordersInFlight: 2, maxQueuedBlobs: 12 })
  return { d, rows }
}

test('every blob gets R confirmed copies on distinct nodes, within the order and batch bounds', async () => {
  const nodes = new FakeNodes()
  const { d, rows } = dispatcher(nodes)
  for (let i = 0; i < 200; i++) await d.add(blob(i), 100)
  await d.finish()
  for (let i = 0; i < 200; i++) assert.is((await nodes.copiesOf(blob(i).toString())).length, 2)
  assert.ok(nodes.maxInFlight <= 2, `${nodes.maxInFlight} orders in flight`)
  assert.ok(nodes.largestOrder <= 4, `an order of ${nodes.largestOrder} blobs`)
  assert.is(rows.size, 400)
  assert.ok([...rows.values()].every(s => s === 'confirmed'))
  assert.ok(d.holders().size >= 2)
})

test('the upload is held back while the nodes do not keep up', async () => {
  const nodes = new FakeNodes()
  nodes.autoRelease = false
  const { d } = dispatcher(nodes)
  let accepted = 0
  const feeding = (async () => {
    for (let i = 0; i < 100; i++) {
      await d.add(blob(i), 100)
      accepted++
    }
  })()
  // Give the feeder every chance to run ahead; it must stall at a bound.
  for (let i = 0; i < 50; i++) await new Promise(resolve => setImmediate(resolve))
  // 2 orders of 4 blobs out, and at most 12 queued copies or a full batch waiting, at 2 copies per blob.
  assert.ok(accepted < 20, `${accepted} blobs accepted while no order was answered`)
  assert.ok(accepted > 0)
  nodes.releaseAll()
  await feeding
  await d.finish()
  assert.is(accepted, 100)
})

test('copies a node fails are placed on other nodes', async () => {
  const nodes = new FakeNodes()
  nodes.failing.add(peers[0])
  const { d, rows } = dispatcher(nodes)
  for (let i = 0; i < 50; i++) await d.add(blob(i), 100)
  await d.finish()
  for (let i = 0; i < 50; i++) {
    const holders = await nodes.copiesOf(blob(i).toString())
    assert.is(holders.length, 2)
    assert.not.ok(holders.includes(peers[0]))
  }
  assert.not.ok([...rows.keys()].some(k => k.endsWith(peers[0])), 'failed copies leave no rows')
})

test('when too few nodes can store, finish fails with an upstream error', async () => {
  const nodes = new FakeNodes()
  for (const p of peers.slice(0, 3)) nodes.failing.add(p)
  const { d } = dispatcher(nodes)
  try {
    for (let i = 0; i < 20; i++) await d.add(blob(i), 100)
    await d.finish()
    assert.unreachable('finish succeeded')
  } catch (err) {
    assert.instance(err, UpstreamError)
  }
  await d.settle(new UpstreamError('done'))
  assert.is(nodes.inFlight, 0, 'settle waits for every order out')
})

test('a hard stop aborts add and finish', async () => {
  const nodes = new FakeNodes()
  const controller = new AbortController()
  const { d } = dispatcher(nodes, 2, controller.signal)
  await d.add(blob(1), 100)
  controller.abort(new CdnError('stop', 'ERR_TEST'))
  let threw = false
  try {
    await d.add(blob(2), 100)
  } catch {
    threw = true
  }
  assert.ok(threw)
})

test.run()
