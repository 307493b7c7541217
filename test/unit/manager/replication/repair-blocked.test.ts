import { Registry } from 'prom-client'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../../../core/log.ts'
import { findRepairBlocks, RepairBlockedMonitor, type BlockInput } from '../../../../manager/replication/repair-blocked.ts'
import type { PolicyContent, PolicyNode } from '../../../../manager/replication/replication-policy.ts'

const GB = 1e9
const MiB = 1024 * 1024

function node (peerId: string, over: Partial<PolicyNode> = {}): PolicyNode {
  return { peerId, state: 'alive', capacity: 10 * GB, used: 0, egressCap: Infinity, egressRate: 0, ...over }
}

function content (id: string, holders: string[][], base = 3): PolicyContent {
  return { id, base, demand: 0, chunks: holders.map((h, i) => ({ cid: `${id}-c${i}`, size: MiB, holders: h })) }
}

function input (nodes: PolicyNode[], contents: PolicyContent[]): BlockInput {
  return { nodes, contents, minCopies: 2, diskHighWater: 0.9, now: 0 }
}

test('three copies wanted, two live nodes hold them, none other alive: one more node is needed', () => {
  const nodes = [node('a'), node('b'), node('c', { state: 'dead' })]
  const blocks = findRepairBlocks(input(nodes, [content('x', [['a', 'b', 'c'], ['a', 'b', 'c']]), content('y', [['a', 'b', 'c']])]))
  assert.equal(blocks.map(b => ({ reason: b.reason, chunks: b.chunks, contents: b.contents, have: b.have, want: b.want, nodesNeeded: b.nodesNeeded })), [
    { reason: 'too-few-nodes', chunks: 3, contents: 2, have: 2, want: 3, nodesNeeded: 1 }
  ])
  assert.is(blocks[0].message, '3 chunks have 2 of 3 copies: 1 more node is needed')
})

test('a chunk down to one copy with nobody else alive needs two more nodes', () => {
  const blocks = findRepairBlocks(input([node('a'), node('b', { state: 'dead' }), node('c', { state: 'dead' })], [content('x', [['a', 'b', 'c']])]))
  assert.is(blocks[0].message, '1 chunk has 1 of 3 copies: 2 more nodes are needed')
})

test('a live node that could take the copy but is full makes it a disk problem, not a node count one', () => {
  const nodes = [node('a'), node('b'), node('c', { state: 'dead' }), node('d', { used: 9.5 * GB })]
  const [b] = findRepairBlocks(input(nodes, [content('x', [['a', 'b', 'c']])]))
  assert.is(b.reason, 'disks-full')
  assert.match(b.message, /^1 chunk has 2 of 3 copies: the nodes that could take them are full/)
})

test('draining nodes count as holders but take no copies; repair that can happen is no block', () => {
  assert.equal(findRepairBlocks(input([node('a'), node('b'), node('c'), node('d')], [content('x', [['a', 'b', 'c']])])), [])
  // d is alive and holds nothing: the policy can repair onto it.
  assert.equal(findRepairBlocks(input([node('a'), node('b'), node('c', { state: 'dead' }), node('d')], [content('x', [['a', 'b', 'c']])])), [])
  const [b] = findRepairBlocks(input([node('a'), node('b'), node('c', { state: 'dead' }), node('d', { state: 'draining' })], [content('x', [['a', 'b', 'c']])]))
  assert.is(b.reason, 'too-few-nodes')
})

test('zones declared but every live node in one of them: copies cannot be spread', () => {
  const nodes = [node('a', { zone: 'z1' }), node('b', { zone: 'z1' }), node('c', { zone: 'z1' }), node('d', { zone: 'z2', state: 'dead' })]
  const blocks = findRepairBlocks(input(nodes, [content('x', [['a', 'b', 'c'], ['a', 'b', 'd']])]))
  const zone = blocks.find(b => b.reason === 'one-zone')
  assert.is(zone?.message, '2 chunks have every copy in zone z1: a live node in another zone is needed')
})

test('the monitor reports a block once, its end once, and keeps the gauge current', async () => {
  const events: Array<{ kind: string, detail?: Record<string, unknown> }> = []
  const registry = new Registry()
  const monitor = new RepairBlockedMonitor({ events: { recordEvent: e => { events.push(e) } }, registry, logger: silentLogger() })
  const blocked = input([node('a'), node('b'), node('c', { state: 'dead' })], [content('x', [['a', 'b', 'c']])])
  await monitor.observe(blocked)
  await monitor.observe(blocked)
  assert.equal(events.map(e => e.kind), ['repair-blocked'])
  assert.equal(events[0].detail, { reason: 'too-few-nodes', chunks: 1, contents: 1, have: 2, want: 3, nodesNeeded: 1, message: '1 chunk has 2 of 3 copies: 1 more node is needed' })
  assert.match(await registry.metrics(), /cdn_manager_repair_blocked_chunks\{reason="too-few-nodes"\} 1/)
  await monitor.observe(input([node('a'), node('b'), node('c', { state: 'dead' }), node('d')], [content('x', [['a', 'b', 'd']])]))
  assert.equal(events.map(e => e.kind), ['repair-blocked', 'repair-unblocked'])
  assert.equal(monitor.current, [])
  assert.match(await registry.metrics(), /cdn_manager_repair_blocked_chunks\{reason="too-few-nodes"\} 0/)
})

test.run()
