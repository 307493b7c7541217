import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DemandTracker } from '../../../../manager/replication/demand-tracker.ts'

const A = 'content-a'
const B = 'content-b'

test('demand is the sum over nodes, smoothed per node so one noisy heartbeat moves it only part way', () => {
  const d = new DemandTracker({ smoothing: 0.5 })
  d.record('n1', { egressRate: 100, contents: { [A]: { requests: 2, bytes: 100 } } }, 0)
  d.record('n2', { egressRate: 300, contents: { [A]: { requests: 4, bytes: 300 } } }, 0)
  assert.equal(d.byContent(0).get(A), { bytes: 400, requests: 6 })
  d.record('n1', { egressRate: 900, contents: { [A]: { requests: 0, bytes: 900 } } }, 10)
  assert.is(d.byContent(10).get(A)!.bytes, 500 + 300)
  assert.is(d.egressOf('n1', 10), 500)
})

test('a content a node stops reporting decays to nothing and is forgotten', () => {
  const d = new DemandTracker({ smoothing: 0.5 })
  d.record('n1', { egressRate: 0, contents: { [A]: { requests: 1, bytes: 64 }, [B]: { requests: 1, bytes: 8 } } }, 0)
  for (let t = 1; t <= 10; t++) d.record('n1', { egressRate: 0, contents: { [B]: { requests: 1, bytes: 8 } } }, t)
  const now = d.byContent(10)
  assert.not.ok(now.has(A), 'A decayed below noise')
  assert.is(now.get(B)!.bytes, 8)
})

test('a node that stopped reporting, or was forgotten, counts for nothing', () => {
  const d = new DemandTracker({ staleMs: 1000 })
  d.record('n1', { egressRate: 50, contents: { [A]: { requests: 1, bytes: 50 } } }, 0)
  d.record('n2', { egressRate: 50, contents: { [A]: { requests: 1, bytes: 50 } } }, 900)
  assert.is(d.byContent(1500).get(A)!.bytes, 50, 'only n2 is recent')
  assert.is(d.egressOf('n1', 1500), undefined)
  d.forget('n2')
  assert.is(d.byContent(1500).size, 0)
})

test.run()
