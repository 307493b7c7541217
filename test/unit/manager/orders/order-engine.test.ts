import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { OrderEngine, type OrderEngineInit } from '../../../../manager/orders/order-engine.ts'

/** An engine whose orders answer only when the test says so. */
function harness (init: Omit<OrderEngineInit<string>, 'send' | 'canSend'>, canSend = () => true) {
  const sent: Array<{ node: string, batch: string[], answer: () => void }> = []
  const engine = new OrderEngine<string>({
    ...init,
    canSend,
    send: async (node, batch) => { await new Promise<void>(resolve => { sent.push({ node, batch, answer: resolve }) }) }
  })
  return { engine, sent }
}

test('upload policy: a free slot takes the longest queue, in batches', async () => {
  const { engine, sent } = harness({ maxInFlight: 1, batchSize: 2, pick: 'longest' })
  engine.enqueue('a', 'a1')
  for (const b of ['b1', 'b2', 'b3']) engine.enqueue('b', b)
  engine.fill()
  assert.equal(sent.map(s => [s.node, s.batch]), [['b', ['b1', 'b2']]])
  assert.is(engine.queued, 2)
  assert.ok(engine.hasQueueOf(1))
  assert.not.ok(engine.hasQueueOf(2))
  sent[0].answer()
  await engine.oneAnswered()
  // a and b are tied at one each; the freed slot went to one of them at once.
  assert.is(sent.length, 2)
  assert.is(engine.inFlight, 1)
})

test('replication policy: one order per node, the node waiting longest first', async () => {
  const { engine, sent } = harness({ maxInFlight: 2, perNode: 1, batchSize: 1, pick: 'oldest' })
  engine.enqueue('a', 'a1')
  engine.enqueue('a', 'a2')
  engine.enqueue('b', 'b1')
  engine.enqueue('c', 'c1')
  engine.fill()
  assert.equal(sent.map(s => s.batch[0]), ['a1', 'b1'], 'a2 waits for a1 though a slot would be free for it')
  sent[0].answer()
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(sent.map(s => s.batch[0]), ['a1', 'b1', 'c1'], 'c waited longer than a became ready again')
  sent[1].answer()
  await new Promise(resolve => setImmediate(resolve))
  assert.equal(sent.map(s => s.batch[0]), ['a1', 'b1', 'c1', 'a2'])
  sent[2].answer()
  sent[3].answer()
  await engine.settled()
  assert.is(engine.queued, 0)
  assert.is(engine.inFlight, 0)
})

test('a stop sends nothing more and hands back what is queued; a failed order reaches onError', async () => {
  let stopped = false
  const errors: string[] = []
  const settled: string[] = []
  const engine = new OrderEngine<string>({
    maxInFlight: 1,
    batchSize: 1,
    pick: 'oldest',
    canSend: () => !stopped,
    send: async (node) => { throw new Error(`${node} unreachable`) },
    onError: (_node, _batch, err) => { errors.push((err as Error).message) },
    onSettled: (_node, batch) => { settled.push(...batch) }
  })
  engine.enqueue('a', 'a1')
  engine.enqueue('b', 'b1')
  stopped = true
  engine.fill()
  assert.is(engine.inFlight, 0)
  stopped = false
  engine.fill()
  stopped = true
  await engine.settled()
  assert.equal(errors, ['a unreachable'])
  assert.equal(settled, ['a1'])
  assert.equal(engine.drop(), [['b', ['b1']]])
  assert.is(engine.queued, 0)
})

test.run()
