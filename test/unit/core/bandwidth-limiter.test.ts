import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BandwidthLimiter } from '../../../core/bandwidth-limiter.ts'

/** A clock the test moves by hand, so the arithmetic is checked without waiting. */
function manualClock (): { now: () => number, advance: (ms: number) => void } {
  let t = 0
  return { now: () => t, advance: (ms) => { t += ms } }
}

test('a full bucket lets its burst through at once, then each caller waits exactly for its share', () => {
  const clock = manualClock()
  const limiter = new BandwidthLimiter(1_000_000, 100_000, clock.now)
  assert.is(limiter.reserve(100_000), 0)
  // In debt: 1 MB at 1 MB/s is one second, whoever asks.
  assert.is(limiter.reserve(1_000_000), 1000)
  // A second caller queues behind the first: its share comes after the first one's.
  assert.is(limiter.reserve(500_000), 1500)
})

test('whole chunks paid at once keep the rate over time, across concurrent senders', () => {
  const clock = manualClock()
  const rate = 25_000_000
  const limiter = new BandwidthLimiter(rate, undefined, clock.now)
  const slice = 1024 * 1024 + 16
  // Four senders, each paying for a whole chunk when its previous one is allowed out.
  const allowedAt = [0, 0, 0, 0]
  let sent = 0
  let last = 0
  for (let round = 0; round < 100; round++) {
    for (let s = 0; s < allowedAt.length; s++) {
      clock.advance(Math.max(0, allowedAt[s] - clock.now()))
      const wait = limiter.reserve(slice)
      allowedAt[s] = clock.now() + wait
      last = Math.max(last, allowedAt[s])
      sent += slice
    }
  }
  // Everything beyond the initial burst went out at no more than the rate.
  const burst = limiter.burst
  const fastestMs = (sent - burst) / rate * 1000
  assert.ok(last >= fastestMs - 1e-6, `${sent} bytes allowed out by ${last} ms; the rate allows ${fastestMs} ms at the earliest`)
  assert.ok(last <= fastestMs + slice / rate * 1000, `senders waited longer than the rate needs: ${last} ms for ${fastestMs} ms`)
})

test('an aborted wait refunds its reservation', async () => {
  const clock = manualClock()
  const limiter = new BandwidthLimiter(1_000_000, 100_000, clock.now)
  assert.is(limiter.reserve(100_000), 0)
  const ac = new AbortController()
  const waiting = limiter.take(1_000_000, ac.signal)
  ac.abort(new Error('gone'))
  const err = await waiting.then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof Error, 'the wait was not refused')
  // The refunded megabyte is not owed by the next caller.
  assert.is(limiter.reserve(100_000), 100)
})

test('an unlimited limiter never waits and has no burst to respect', async () => {
  const limiter = new BandwidthLimiter(Infinity)
  assert.ok(limiter.unlimited)
  assert.is(limiter.reserve(1e12), 0)
  await limiter.take(1e12)
})

test.run()
