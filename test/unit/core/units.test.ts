import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { parseDuration, parseRate, parseSize } from '../../../core/units.ts'
import { BandwidthLimiter } from '../../../core/bandwidth-limiter.ts'

test('sizes, rates and durations parse the way operators write them', () => {
  assert.is(parseSize('200GB'), 200e9)
  assert.is(parseSize('1MiB'), 1048576)
  assert.is(parseSize('4096'), 4096)
  assert.is(parseRate('50MB/s'), 50e6)
  assert.is(parseRate('unlimited'), Infinity)
  assert.is(parseDuration('1.5s'), 1500)
  assert.throws(() => parseSize('12 parsecs'), /invalid size/)
  assert.throws(() => parseRate('fast'), /invalid rate/)
  assert.throws(() => parseDuration('soon'), /invalid duration/)
})

test('the limiter lets a burst through at once, then meters senders in arrival order', () => {
  let clock = 0
  const limiter = new BandwidthLimiter(1_000_000, 100_000, () => clock)
  assert.is(limiter.reserve(100_000), 0)
  // The bucket is empty: 50 kB at 1 MB/s is 50 ms, and the next sender queues behind it.
  assert.is(limiter.reserve(50_000), 50)
  assert.is(limiter.reserve(50_000), 100)
  clock = 1000
  // A second later the bucket has refilled to its burst, no more.
  assert.is(limiter.reserve(100_000), 0)
  assert.ok(limiter.reserve(1) > 0)
})

test('an aborted wait refunds its tokens and rejects', async () => {
  const limiter = new BandwidthLimiter(1000, 1000)
  await limiter.take(1000)
  const ac = new AbortController()
  const p = limiter.take(100_000, ac.signal)
  ac.abort()
  let rejected = false
  try { await p } catch { rejected = true }
  assert.ok(rejected)
})

test.run()
