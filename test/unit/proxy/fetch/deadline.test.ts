import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { TimeoutError } from '../../../../core/errors.ts'
import { DeadlineClock } from '../../../../proxy/fetch/deadline.ts'
import { eventually } from '../../proxy-standins.ts'

function manualClock (): { now: () => number, advance: (ms: number) => void } {
  let t = 0
  return { now: () => t, advance: (ms) => { t += ms } }
}

test('a deadline aborts its signal with a TimeoutError once its time has passed, not before', async () => {
  const c = manualClock()
  const clock = new DeadlineClock({ tickMs: 1, now: c.now })
  const d = clock.start(1000, undefined, 'too slow')
  const other = clock.start(5000)
  c.advance(999)
  await new Promise(resolve => setTimeout(resolve, 20))
  assert.not.ok(d.signal.aborted)
  c.advance(1)
  await eventually(() => d.signal.aborted, 'deadline fired')
  assert.ok(d.expired)
  assert.instance(d.signal.reason, TimeoutError)
  assert.is((d.signal.reason as Error).message, 'too slow')
  assert.not.ok(other.signal.aborted, 'a later deadline is untouched')
  other.clear()
  clock.close()
})

test('the caller aborting first passes its reason through and is not an expiry', () => {
  const clock = new DeadlineClock()
  const parent = new AbortController()
  const d = clock.start(60_000, parent.signal)
  const reason = new Error('caller gave up')
  parent.abort(reason)
  assert.ok(d.signal.aborted)
  assert.is(d.signal.reason, reason)
  assert.not.ok(d.expired)
  const late = clock.start(60_000, parent.signal)
  assert.ok(late.signal.aborted, 'an already aborted caller aborts at once')
  clock.close()
})

test('a cleared deadline never fires', async () => {
  const c = manualClock()
  const clock = new DeadlineClock({ tickMs: 1, now: c.now })
  const d = clock.start(10)
  const witness = clock.start(10)
  d.clear()
  c.advance(100)
  await eventually(() => witness.signal.aborted, 'the other deadline fired')
  assert.not.ok(d.signal.aborted)
  clock.close()
})

test.run()
