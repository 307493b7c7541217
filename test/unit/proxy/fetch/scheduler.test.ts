import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { hedgeDeadline, hedgeTarget, planRequests, windowSize, type PlanInput } from '../../../../proxy/fetch/scheduler.ts'
import { Scoreboard } from '../../../../proxy/fetch/scoreboard.ts'

const CHUNK = 1024 * 1024

function clock (): { now: () => number, advance: (ms: number) => void } {
  let t = 0
  return { now: () => t, advance: (ms) => { t += ms } }
}

/** Teaches the scoreboard a source's speed through a few transfers, as real fetches would. */
function measure (sb: Scoreboard, source: string, rttMs: number, bytesPerMs: number, times = 5): void {
  for (let i = 0; i < times; i++) sb.recordSuccess(source, { bytes: CHUNK, ttfbMs: rttMs, totalMs: rttMs + CHUNK / bytesPerMs })
}

function plan (sb: Scoreboard, wanted: number[], holders: Record<number, string[]> | string[], extra: Partial<PlanInput> = {}): Map<number, string> {
  const out = planRequests({
    wanted,
    holders: (c) => Array.isArray(holders) ? holders : holders[c] ?? [],
    bytes: () => CHUNK,
    slots: wanted.length,
    inflightBySource: new Map(),
    maxPerSource: 8,
    estimator: sb,
    ...extra
  })
  return new Map(out.map(a => [a.chunk, a.source]))
}

test('the next chunk goes to the faster source', () => {
  const sb = new Scoreboard()
  measure(sb, 'slow', 20, 1_000) // ~1 MB/s
  measure(sb, 'fast', 20, 100_000) // ~100 MB/s
  assert.is(plan(sb, [0], ['slow', 'fast']).get(0), 'fast')
  assert.is(plan(sb, [0], ['fast', 'slow']).get(0), 'fast')
})

test('a much faster source takes most chunks, but what is queued there counts', () => {
  const sb = new Scoreboard()
  measure(sb, 'slow', 5, 10_000)
  measure(sb, 'fast', 5, 40_000)
  const p = plan(sb, Array.from({ length: 10 }, (_, i) => i), ['slow', 'fast'])
  const fast = [...p.values()].filter(s => s === 'fast').length
  assert.ok(fast > 5, `fast got ${fast} of 10`)
  assert.ok(fast < 10, 'the slow source still gets work once the fast one is queued up')
})

test('equal sources share the chunks evenly', () => {
  const sb = new Scoreboard()
  for (const s of ['a', 'b', 'c']) measure(sb, s, 10, 50_000)
  const p = plan(sb, Array.from({ length: 9 }, (_, i) => i), ['a', 'b', 'c'])
  const count = (s: string): number => [...p.values()].filter(x => x === s).length
  assert.equal([count('a'), count('b'), count('c')], [3, 3, 3])
})

test('work already in flight at a source counts against it', () => {
  const sb = new Scoreboard()
  measure(sb, 'a', 10, 50_000)
  measure(sb, 'b', 10, 50_000)
  sb.begin('a', CHUNK)
  sb.begin('a', CHUNK)
  assert.is(plan(sb, [0], ['a', 'b']).get(0), 'b')
  sb.end('a', CHUNK)
  sb.end('a', CHUNK)
  assert.is(plan(sb, [0], ['a', 'b']).get(0), 'a', 'ties go to the first holder')
})

test('a chunk only goes to a source whose bitmap has it', () => {
  const sb = new Scoreboard()
  measure(sb, 'fast', 1, 500_000)
  measure(sb, 'slow', 50, 500)
  const p = plan(sb, [0, 1, 2, 3], { 0: ['slow'], 1: ['fast', 'slow'], 2: ['slow'], 3: [] })
  assert.is(p.get(0), 'slow')
  assert.is(p.get(1), 'fast')
  assert.is(p.get(2), 'slow')
  assert.not.ok(p.has(3), 'a chunk nobody holds is not assigned')
})

test('the plan stays within the free slots and each source within its cap, earliest chunks first', () => {
  const sb = new Scoreboard()
  measure(sb, 'a', 10, 50_000)
  measure(sb, 'b', 10, 50_000)
  const p = plan(sb, [4, 5, 6, 7, 8, 9], ['a', 'b'], { slots: 3 })
  assert.equal([...p.keys()], [4, 5, 6])
  const capped = plan(sb, [0, 1, 2, 3, 4], ['a', 'b'], { maxPerSource: 2, inflightBySource: new Map([['a', 1]]) })
  assert.is([...capped.values()].filter(s => s === 'a').length, 1)
  assert.is([...capped.values()].filter(s => s === 'b').length, 2)
  assert.is(capped.size, 3, 'chunks beyond every cap wait')
})

test('a penalised source is avoided until its penalty decays', () => {
  const c = clock()
  const sb = new Scoreboard({ now: c.now, penaltyHalfLifeMs: 1000 })
  measure(sb, 'fast', 5, 100_000)
  measure(sb, 'slow', 5, 5_000)
  assert.is(plan(sb, [0], ['fast', 'slow']).get(0), 'fast')
  sb.recordFailure('fast', 'hash')
  assert.ok(sb.penaltyMs('fast') > 0)
  assert.is(plan(sb, [0], ['fast', 'slow']).get(0), 'slow')
  c.advance(2000)
  assert.is(plan(sb, [0], ['fast', 'slow']).get(0), 'slow', 'still avoided while the penalty is large')
  c.advance(30_000)
  assert.is(sb.penaltyMs('fast'), 0)
  assert.is(plan(sb, [0], ['fast', 'slow']).get(0), 'fast')
})

test('repeated failures add up; a hash mismatch weighs more than an error', () => {
  const c = clock()
  const sb = new Scoreboard({ now: c.now })
  sb.recordFailure('a', 'error')
  sb.recordFailure('b', 'hash')
  assert.ok(sb.penaltyMs('b') > sb.penaltyMs('a'))
  const once = sb.penaltyMs('a')
  sb.recordFailure('a', 'error')
  assert.ok(sb.penaltyMs('a') > once)
  const snap = sb.snapshot().find(s => s.id === 'a')
  assert.is(snap?.failures.error, 2)
})

test('the smoothed speed follows a source that slows down', () => {
  const sb = new Scoreboard()
  measure(sb, 'a', 10, 100_000)
  const before = sb.estimate('a').throughput
  measure(sb, 'a', 10, 1_000, 3)
  const after = sb.estimate('a').throughput
  assert.ok(after < before / 2, `${after} vs ${before}`)
  assert.ok(after > 1_000, 'one burst does not erase the history')
})

test('a source never measured is assumed as good as the average measured one', () => {
  const sb = new Scoreboard()
  measure(sb, 'a', 10, 20_000)
  measure(sb, 'b', 10, 40_000)
  const guess = sb.estimate('new')
  assert.ok(Math.abs(guess.throughput - 30_000) < 1)
})

test('the window grows with the number and speed of sources, within its bounds', () => {
  const slow = { rttMs: 1, throughput: 1_000 }
  const fast = { rttMs: 50, throughput: 100_000 }
  const one = windowSize([slow], CHUNK)
  const three = windowSize([slow, slow, slow], CHUNK)
  assert.ok(three > one, `${three} > ${one}`)
  assert.ok(windowSize([fast, fast, fast], CHUNK) > three, 'a bigger bandwidth-delay product wants more in flight')
  assert.ok(windowSize([], CHUNK) >= 2, 'never below the minimum')
  const many = Array.from({ length: 100 }, () => fast)
  assert.is(windowSize(many, CHUNK, { max: 20 }), 20)
  assert.is(windowSize(many, CHUNK, { maxBytes: 8 * CHUNK }), 8, 'memory bound')
})

test('a slow request is duplicated on the other holder expected to finish first, never on its own source', () => {
  const sb = new Scoreboard()
  measure(sb, 'slow', 20, 1_000)
  measure(sb, 'mid', 20, 10_000)
  measure(sb, 'fast', 20, 100_000)
  assert.is(hedgeTarget('slow', ['slow', 'mid', 'fast'], CHUNK, sb), 'fast')
  assert.is(hedgeTarget('fast', ['slow', 'mid', 'fast'], CHUNK, sb), 'mid')
  assert.is(hedgeTarget('slow', ['slow'], CHUNK, sb), undefined, 'no other holder: nothing to duplicate on')
})

test('a request is judged late against the best holder of its chunk, and never before the minimum', () => {
  const sb = new Scoreboard()
  measure(sb, 'slow', 20, 1_000)
  measure(sb, 'fast', 20, 100_000)
  const o = { hedgeFactor: 3, hedgeMinMs: 0 }
  const onSlowAlone = hedgeDeadline(1000, 'slow', ['slow'], CHUNK, sb, o)
  const onSlowWithFast = hedgeDeadline(1000, 'slow', ['slow', 'fast'], CHUNK, sb, o)
  assert.ok(onSlowWithFast < onSlowAlone, 'a collapsed source does not earn itself a late deadline')
  assert.is(onSlowWithFast, hedgeDeadline(1000, 'fast', ['slow', 'fast'], CHUNK, sb, o))
  assert.is(hedgeDeadline(1000, 'fast', ['fast'], CHUNK, sb, { hedgeFactor: 3, hedgeMinMs: 60_000 }), 61_000)
})

test.run()
