/**
 * The memory budget shared by all reads of a fetch engine: many readers at
 * once never hold more than it in flight and in their reorder buffers, each
 * still moves, and freed memory lets the waiting ones go on.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TAG_BYTES } from '../../../../core/chunk-crypto.ts'
import { parseContentId } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import { DefaultFetchEngine } from '../../../../proxy/fetch/fetch-engine.ts'
import { MemoryBudget } from '../../../../proxy/fetch/memory-budget.ts'
import type { ContentResolver, ResolvedContent } from '../../../../proxy/resolve/resolver.ts'
import { Scoreboard } from '../../../../proxy/fetch/scoreboard.ts'
import { PlaneDouble } from '../plane-double.ts'
import { collect, eventually, makeContent, makeSigner, type TestContent } from '../../proxy-standins.ts'

const CHUNK = 16 * 1024
const BLOB = CHUNK + TAG_BYTES
const logger = silentLogger()

test('a read holding nothing may always take one chunk; beyond that the bound holds', () => {
  const budget = new MemoryBudget(100)
  const a = budget.account()
  assert.ok(a.tryTake(150), 'the first chunk of a read, even over the bound')
  assert.not.ok(a.tryTake(1))
  a.release(150)
  assert.ok(a.tryTake(60))
  assert.ok(a.tryTake(40))
  assert.not.ok(a.tryTake(1))
  assert.is(budget.stats().bytes, 100)
  a.close()
  assert.is(budget.stats().bytes, 0)
  assert.is(budget.stats().peak, 150)
})

test('above its fair share, a read takes nothing while another waits', () => {
  const budget = new MemoryBudget(100)
  const a = budget.account()
  const b = budget.account()
  assert.ok(a.tryTake(30))
  assert.ok(a.tryTake(20))
  assert.ok(b.tryTake(40))
  assert.not.ok(b.tryTake(20), 'the budget is nearly full')
  b.whenFree(() => {})
  assert.not.ok(a.tryTake(10), 'a is at its half and b is waiting')
  b.close()
  assert.ok(a.tryTake(10), 'alone again, a may use the whole budget')
})

test('two reads: one may use what the other does not want, and is woken when memory frees up', async () => {
  const budget = new MemoryBudget(100)
  const a = budget.account()
  const b = budget.account()
  assert.ok(a.tryTake(10))
  assert.ok(b.tryTake(50))
  assert.ok(b.tryTake(40), 'nobody waits, so b may go past its half')
  assert.not.ok(b.tryTake(10), 'the bound holds')
  let woken = false
  b.whenFree(() => { woken = true })
  a.release(10)
  await eventually(() => woken, 'b woken')
  assert.ok(b.tryTake(10))
})

test('a read below its fair share takes memory back from the one furthest above it', () => {
  const budget = new MemoryBudget(100)
  const given: number[] = []
  const greedy = budget.account((bytes) => {
    given.push(bytes)
    greedy.release(bytes)
    return bytes
  })
  const late = budget.account()
  assert.ok(greedy.tryTake(90))
  assert.ok(greedy.tryTake(10))
  assert.ok(late.tryTake(20), 'the late read gets memory though the budget was full')
  assert.equal(given, [20])
  assert.is(budget.stats().bytes, 100)
  assert.ok(late.tryTake(30), 'up to its half')
  assert.not.ok(late.tryTake(10), 'but not beyond: the greedy read is back at its share')
  assert.is(budget.stats().reclaimed, 50)
})

function resolverFor (content: TestContent, plane: PlaneDouble): ContentResolver {
  const resolved: ResolvedContent = {
    id: content.id,
    cid: parseContentId(content.id),
    manifest: content.manifest,
    key: content.key,
    metadata: { name: 'x', type: 'application/octet-stream' },
    sources: plane.sources(['A', 'B']),
    viaManager: false
  }
  return { resolve: async () => resolved, invalidate: () => {} }
}

test('several readers at once never hold more than the engine\'s budget in flight; all finish once they read on', async () => {
  const content = await makeContent({ size: 40 * CHUNK, chunkSize: CHUNK, signer: await makeSigner() })
  const plane = new PlaneDouble(content)
  // Every chunk after the first stalls: requests stay in flight until released.
  for (let i = 1; i < content.chunkIds.length; i++) for (const s of ['A', 'B']) plane.set(s, i, 'stall')
  const budgetBlobs = 6
  const engine = new DefaultFetchEngine({ resolver: resolverFor(content, plane), fetcher: plane, scoreboard: new Scoreboard(), logger }, {
    maxBufferedBytes: budgetBlobs * BLOB,
    reader: { hedgeFactor: Infinity }
  })
  try {
    const readers = await Promise.all([0, 1, 2].map(async () => await engine.open(content.id)))
    for (const r of readers) assert.is((await r.body.next()).done, false)
    // Without the budget each reader would keep a window of 4 or more requests at the two sources.
    await eventually(() => plane.calls.filter(c => c.end === 'pending').length === budgetBlobs, 'the budget filled')
    await new Promise(resolve => setImmediate(resolve))
    assert.is(plane.calls.filter(c => c.end === 'pending').length, budgetBlobs)
    assert.ok(plane.maxInflight <= budgetBlobs, `${plane.maxInflight} requests in flight at most`)
    assert.ok(engine.snapshot().memory.peak <= budgetBlobs * BLOB)
    // Each reader got its share; none was fenced out by the others.
    const pendingChunks = plane.calls.filter(c => c.end === 'pending').map(c => c.chunk)
    assert.ok(pendingChunks.filter(c => c === 1).length === 3, 'every reader asked for its next chunk')
    for (let i = 1; i < content.chunkIds.length; i++) for (const s of ['A', 'B']) plane.release(s, i)
    const rest = await Promise.all(readers.map(async r => await collect(r.body)))
    for (const r of rest) assert.ok(r.bytes.equals(content.plaintext.subarray(CHUNK)))
    assert.ok(plane.maxInflight <= budgetBlobs)
    assert.ok(engine.snapshot().memory.peak <= budgetBlobs * BLOB)
    assert.is(engine.snapshot().memory.bytes, 0)
  } finally {
    await engine.close()
  }
})

test('a budget smaller than one chunk per reader still lets every reader finish', async () => {
  const content = await makeContent({ size: 12 * CHUNK + 5, chunkSize: CHUNK, signer: await makeSigner() })
  const plane = new PlaneDouble(content)
  const engine = new DefaultFetchEngine({ resolver: resolverFor(content, plane), fetcher: plane, scoreboard: new Scoreboard(), logger }, { maxBufferedBytes: 1 })
  try {
    const all = await Promise.all([0, 1, 2, 3].map(async () => await collect((await engine.open(content.id)).body)))
    for (const r of all) assert.ok(r.bytes.equals(content.plaintext))
    assert.ok(plane.maxInflight <= 4, 'one chunk per reader at most')
  } finally {
    await engine.close()
  }
})

test.run()
