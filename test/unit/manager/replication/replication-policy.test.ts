import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { randomBytes } from 'node:crypto'
import { chunkCid } from '../../../../core/ids.ts'
import { DEFAULT_POLICY, reconcile, type PolicyAction, type PolicyContent, type PolicyNode, type PolicySettings } from '../../../../manager/replication/replication-policy.ts'

const GB = 1e9
const MiB = 1024 * 1024

function node (i: number, over: Partial<PolicyNode> = {}): PolicyNode {
  return { peerId: `n${i}`, state: 'alive', capacity: 100 * GB, used: 10 * GB, egressCap: 50e6, egressRate: 0, kadKey: randomBytes(32), ...over }
}

function content (id: string, holders: string[][], over: Partial<PolicyContent> = {}): PolicyContent {
  return { id, base: 3, demand: 0, chunks: holders.map(h => ({ cid: chunkCid(randomBytes(8)).toString(), size: MiB, holders: h })), ...over }
}

const settings = (over: Partial<PolicySettings> = {}): PolicySettings => ({ ...DEFAULT_POLICY, minCopies: 2, ...over })

function byKind (actions: PolicyAction[], kind: string, reason?: string): any[] {
  return actions.filter((a: any) => a.kind === kind && (reason == null || a.reason === reason))
}

/** Applies a round's actions the way an executor would: copies land, deletes happen. */
function apply (contents: PolicyContent[], actions: PolicyAction[]): void {
  for (const a of actions) {
    if (a.kind === 'expire') continue
    const ch = contents.flatMap(c => c.chunks).find(x => x.cid === a.cid)!
    if (a.kind === 'copy') ch.holders.push(a.to)
    else ch.holders = ch.holders.filter(h => h !== a.node)
  }
}

test('a dead node\'s chunks are re-copied to live nodes, nothing is deleted', () => {
  const nodes = [0, 1, 2, 3, 4].map(i => node(i))
  nodes[0].state = 'dead'
  const c = content('c1', [['n0', 'n1', 'n2'], ['n1', 'n2', 'n3'], ['n0', 'n3', 'n4']])
  const r = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  const copies = byKind(r.actions, 'copy', 'repair')
  assert.is(copies.length, 2)
  assert.is(byKind(r.actions, 'delete').length, 0)
  for (const a of copies) {
    assert.is.not(a.to, 'n0')
    assert.not.ok(a.from.includes('n0'), 'never read from the dead node')
    const chunk = c.chunks.find(x => x.cid === a.cid)!
    assert.not.ok(chunk.holders.includes(a.to), 'a new copy goes to a node without one')
  }
  assert.is(r.underReplicated, 2)
})

test('repairs of the most endangered chunks come first when the budget is short', () => {
  const nodes = [0, 1, 2, 3, 4, 5].map(i => node(i))
  nodes[0].state = 'dead'
  nodes[1].state = 'dead'
  const c = content('c1', [['n0', 'n2', 'n3'], ['n0', 'n1', 'n4']])
  const r = reconcile({ nodes, contents: [c], settings: settings({ moveBudget: MiB }), now: 0 })
  const copies = byKind(r.actions, 'copy')
  assert.is(copies.length, 1)
  assert.is(copies[0].cid, c.chunks[1].cid, 'the chunk down to one copy is repaired first')
  assert.ok(r.deferred >= 2)
})

test('hot content gains copies up to the maximum, then falls back to the base with hysteresis', () => {
  const nodes = Array.from({ length: 10 }, (_, i) => node(i))
  const c = content('hot', [['n0', 'n1', 'n2']], { demand: 200e6 })
  const s = settings({ maxCopies: 6 })
  let r = reconcile({ nodes, contents: [c], settings: s, now: 0 })
  // 200 MB/s at 60% of 50 MB/s per holder needs 7 copies; capped at 6.
  assert.is(r.wanted.get('hot'), 6)
  assert.is(byKind(r.actions, 'copy', 'mirror').length, 3)
  apply([c], r.actions)
  assert.is(c.chunks[0].holders.length, 6)

  // Demand inside the band between the mirror and trim thresholds: no change (no flapping).
  c.demand = 80e6
  r = reconcile({ nodes, contents: [c], settings: s, now: 0 })
  assert.is(r.actions.length, 0)

  // Demand gone: trimmed back to the base, never below.
  c.demand = 0
  r = reconcile({ nodes, contents: [c], settings: s, now: 0 })
  assert.is(byKind(r.actions, 'delete', 'trim').length, 3)
  apply([c], r.actions)
  assert.is(c.chunks[0].holders.length, 3)
  assert.is(reconcile({ nodes, contents: [c], settings: s, now: 0 }).actions.length, 0)
})

test('a draining node is emptied only after its copies exist elsewhere', () => {
  const nodes = [0, 1, 2, 3, 4].map(i => node(i))
  nodes[0].state = 'draining'
  const c = content('c1', [['n0', 'n1', 'n2'], ['n0', 'n3', 'n4']])
  let r = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  assert.is(byKind(r.actions, 'copy', 'drain').length, 2)
  assert.is(byKind(r.actions, 'delete').length, 0, 'no delete before the replacement is confirmed')
  apply([c], r.actions)
  r = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  assert.is(byKind(r.actions, 'delete', 'drain').length, 2)
  assert.ok(byKind(r.actions, 'delete').every(a => a.node === 'n0'))
  apply([c], r.actions)
  assert.ok(c.chunks.every(ch => !ch.holders.includes('n0') && ch.holders.length === 3))
})

test('a node above its disk high-water mark sheds just enough to get under the low-water mark', () => {
  const nodes = Array.from({ length: 6 }, (_, i) => node(i, { capacity: 100 * MiB, used: 20 * MiB }))
  nodes[0].used = 95 * MiB
  const holders = Array.from({ length: 40 }, (_, i) => ['n0', `n${1 + (i % 5)}`, `n${1 + ((i + 1) % 5)}`])
  const c = content('c1', holders)
  const r = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  const moves = byKind(r.actions, 'copy', 'migrate')
  // 95 MiB used, low-water 80 MiB: 15 chunks of 1 MiB move.
  assert.is(moves.length, 15)
  apply([c], r.actions)
  const r2 = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  const deletes = byKind(r2.actions, 'delete', 'migrate')
  assert.is(deletes.length, 15)
  assert.ok(deletes.every(a => a.node === 'n0'))
})

test('a reported bad copy is replaced, then deleted', () => {
  const nodes = [0, 1, 2, 3].map(i => node(i))
  const c = content('c1', [['n0', 'n1', 'n2']])
  c.chunks[0].bad = ['n1']
  let r = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  const copy = byKind(r.actions, 'copy')
  assert.is(copy.length, 1)
  assert.is(copy[0].reason, 'bad-copy')
  assert.not.ok(copy[0].from.includes('n1'))
  apply([c], r.actions)
  r = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  assert.equal(byKind(r.actions, 'delete').map(a => [a.reason, a.node]), [['bad-copy', 'n1']])
})

test('distinct zones are kept when copies are added', () => {
  const zones = ['a', 'a', 'b', 'b', 'c', 'c']
  const nodes = zones.map((z, i) => node(i, { zone: z }))
  nodes[4].state = 'dead'
  const c = content('c1', [['n0', 'n2', 'n4']])
  const r = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  assert.equal(byKind(r.actions, 'copy').map(a => a.to), ['n5'])
})

test('expired content is expired', () => {
  const nodes = [0, 1, 2].map(i => node(i))
  const c = content('old', [['n0', 'n1', 'n2']], { expiresAt: 1000 })
  assert.equal(reconcile({ nodes, contents: [c], settings: settings(), now: 999 }).actions, [])
  assert.equal(reconcile({ nodes, contents: [c], settings: settings(), now: 1000 }).actions, [{ kind: 'expire', content: 'old' }])
})

test('in random pools, no round ever leaves a chunk with fewer healthy copies than the minimum', () => {
  for (let round = 0; round < 200; round++) {
    const n = 4 + (round % 9)
    const nodes = Array.from({ length: n }, (_, i) => node(i, {
      state: (['alive', 'alive', 'alive', 'draining', 'dead'] as const)[Math.floor(Math.random() * 5)],
      used: Math.floor(Math.random() * 100) * GB,
      egressRate: Math.random() * 60e6
    }))
    const contents = Array.from({ length: 5 }, (_, k) => {
      const holders = Array.from({ length: 4 }, () => {
        const pick = new Set<string>()
        const want = 2 + Math.floor(Math.random() * 4)
        while (pick.size < Math.min(want, n)) pick.add(`n${Math.floor(Math.random() * n)}`)
        return [...pick]
      })
      const c = content(`c${k}`, holders, { demand: Math.random() < 0.3 ? Math.random() * 400e6 : 0 })
      c.chunks[0].bad = Math.random() < 0.3 ? [c.chunks[0].holders[0]] : []
      return c
    })
    const s = settings()
    const live = (h: string): boolean => nodes.find(x => x.peerId === h)!.state !== 'dead'
    const healthyCount = (ch: PolicyContent['chunks'][number], holders: string[]): number => holders.filter(h => live(h) && !(ch.bad ?? []).includes(h)).length
    const before = new Map(contents.flatMap(c => c.chunks).map(ch => [ch.cid, healthyCount(ch, ch.holders)]))
    const r = reconcile({ nodes, contents, settings: s, now: 0 })
    // Deletes run before copies are confirmed: check what is left with deletes alone.
    for (const c of contents) {
      for (const ch of c.chunks) {
        const gone = new Set(byKind(r.actions, 'delete').filter(a => a.cid === ch.cid).map(a => a.node))
        const after = healthyCount(ch, ch.holders.filter(h => !gone.has(h)))
        assert.ok(after >= Math.min(s.minCopies, before.get(ch.cid)!), `round ${round}: chunk fell from ${before.get(ch.cid)} to ${after}`)
      }
    }
  }
})

test('a chunk with an action under way gets no new one, but still counts', () => {
  const nodes = [0, 1, 2, 3, 4].map(i => node(i))
  nodes[0].state = 'dead'
  const c = content('c1', [['n0', 'n1', 'n2'], ['n0', 'n3', 'n4']])
  c.chunks[0].busy = true
  const r = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  assert.equal(byKind(r.actions, 'copy').map(a => a.cid), [c.chunks[1].cid])
  assert.is(r.underReplicated, 2, 'the busy chunk is still reported short')
})

test('when every holder of a chunk is over its disk mark, each chunk leaves one node at a time and the shedding completes', () => {
  const nodes = Array.from({ length: 4 }, (_, i) => node(i, { capacity: 12 * MiB, used: 11 * MiB }))
  nodes[3].used = 0
  const c = content('full', Array.from({ length: 11 }, () => ['n0', 'n1', 'n2']))
  let r = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  const moves = byKind(r.actions, 'copy', 'migrate')
  assert.ok(moves.length > 0 && moves.every(a => a.to === 'n3'))
  assert.is(new Set(moves.map(a => a.cid)).size, moves.length, 'no chunk copied twice: one holder sheds it')
  apply([c], r.actions)
  nodes[3].used = moves.length * MiB
  r = reconcile({ nodes, contents: [c], settings: settings(), now: 0 })
  const deletes = byKind(r.actions, 'delete', 'migrate')
  assert.is(deletes.length, moves.length, 'each moved chunk now leaves its full node')
  apply([c], r.actions)
  for (const p of ['n0', 'n1', 'n2']) {
    const held = c.chunks.filter(ch => ch.holders.includes(p)).length * MiB
    assert.ok(held <= 0.9 * 12 * MiB, `${p} under the high-water mark`)
  }
  assert.ok(c.chunks.every(ch => ch.holders.length === 3))
})

test('copies are read from staying holders before leaving ones, least busy first', () => {
  const nodes = [0, 1, 2, 3, 4].map(i => node(i))
  nodes[0].state = 'draining'
  nodes[1].egressRate = 40e6
  const c = content('c1', [['n0', 'n1', 'n2']])
  const [copy] = byKind(reconcile({ nodes, contents: [c], settings: settings(), now: 0 }).actions, 'copy', 'drain')
  assert.equal(copy.from, ['n2', 'n1', 'n0'])
})

test('mirrors go mostly to the nodes with the most egress to spare', () => {
  const nodes = Array.from({ length: 12 }, (_, i) => node(i, { egressCap: 50e6, egressRate: i < 6 ? 40e6 : 0 }))
  const targets = new Map<string, number>()
  for (let k = 0; k < 200; k++) {
    const c = content(`hot${k}`, [['n0', 'n1', 'n2']], { demand: 200e6 })
    for (const n of nodes.slice(0, 3)) n.egressRate = 44e6
    for (const a of byKind(reconcile({ nodes, contents: [c], settings: settings(), now: 0 }).actions, 'copy', 'mirror')) targets.set(a.to, (targets.get(a.to) ?? 0) + 1)
  }
  const busy = ['n3', 'n4', 'n5'].reduce((s, p) => s + (targets.get(p) ?? 0), 0)
  const idle = ['n6', 'n7', 'n8', 'n9', 'n10', 'n11'].reduce((s, p) => s + (targets.get(p) ?? 0), 0)
  // Spare egress: 5 MB/s on a busy node, 45 MB/s on an idle one; 3 busy against 6 idle nodes.
  assert.ok(idle > 8 * busy, `idle nodes got ${idle} mirrors, busy ones ${busy}`)
})

test.run()
