import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { MoveBudget } from '../../../../manager/replication/move-budget.ts'

test('the pool moves at most its share on average, with a bounded burst', () => {
  const clock = { now: 0 }
  const b = new MoveBudget({ burstSeconds: 2, now: () => clock.now })
  // 10 MB/s share: a fresh bucket holds 2 s of it.
  assert.is(b.available(10e6), 20e6)
  b.spend(20e6)
  clock.now = 500
  assert.is(b.available(10e6), 5e6, 'half a second refills half a second of share')
  b.spend(5e6)
  clock.now = 60_000
  assert.is(b.available(10e6), 20e6, 'a quiet minute does not pile up beyond the burst')
})

test('a share too small for one blob still lets one through at a time', () => {
  const clock = { now: 0 }
  const b = new MoveBudget({ now: () => clock.now })
  const chunk = 1024 * 1024
  assert.is(b.available(1000, chunk), chunk)
  b.spend(chunk)
  clock.now = 1000
  assert.ok(b.available(1000, chunk) < chunk, 'then it waits for the share to pay it back')
})

test('the rate follows the pool: fewer nodes, less to spend', () => {
  const clock = { now: 0 }
  const b = new MoveBudget({ burstSeconds: 1, now: () => clock.now })
  b.spend(b.available(10e6))
  clock.now = 1000
  assert.is(b.available(2e6), 2e6)
})

test.run()
