import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { setTimeout as sleep } from 'node:timers/promises'
import { watchStall } from '../../../../manager/publish/stall-watch.ts'

/** A fake clock: the watch sees only the time the test says has passed. */
function clock (): { now: () => number, advance: (ms: number) => void } {
  let t = 0
  return { now: () => t, advance: (ms) => { t += ms } }
}

async function waitFor (check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await sleep(10)
}

test('a client that sends nothing while the reader waits is a stall', async () => {
  const c = clock()
  let stalled = 0
  let release!: () => void
  async function * body (): AsyncGenerator<Uint8Array> {
    yield new Uint8Array(1)
    await new Promise<void>(resolve => { release = resolve })
  }
  const w = watchStall(body(), 1000, () => { stalled++; return new Error('stalled') }, c.now)
  const it = w.body[Symbol.asyncIterator]()
  await it.next()
  // Settled into a value at once: its failure is the point, not an unhandled rejection.
  const pending = it.next().then(() => 'resolved', (err: Error) => err.message)
  c.advance(999)
  await sleep(300)
  assert.is(stalled, 0, 'not yet')
  c.advance(1)
  await waitFor(() => stalled > 0)
  assert.is(stalled, 1)
  c.advance(5000)
  await sleep(300)
  assert.is(stalled, 1, 'told once')
  // The read that was waiting fails at once: a reader blocked on the body learns of the stall.
  assert.is(await pending, 'stalled')
  release()
  w.stop()
})

test('time the reader spends not reading (nodes confirming copies) is not a stall', async () => {
  const c = clock()
  let stalled = 0
  async function * body (): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 3; i++) yield new Uint8Array(1)
  }
  const w = watchStall(body(), 1000, () => { stalled++; return new Error('stalled') }, c.now)
  let n = 0
  for await (const _ of w.body) {
    n++
    c.advance(60_000)
    await sleep(300)
  }
  w.stop()
  assert.is(n, 3)
  assert.is(stalled, 0)
})

test.run()
