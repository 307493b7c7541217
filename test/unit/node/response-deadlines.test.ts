import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ResponseDeadlines } from '../../../node/response-deadlines.ts'

test('a deadline fires once when passed, not before; one given up never fires', () => {
  let t = 0
  const deadlines = new ResponseDeadlines({ deadlineMs: 1000, now: () => t })
  try {
    const fired: string[] = []
    deadlines.watch(() => { fired.push('a') })
    const unwatchB = deadlines.watch(() => { fired.push('b') })
    t = 500
    deadlines.watch(() => { fired.push('c') })
    deadlines.check()
    assert.equal(fired, [])
    unwatchB()
    t = 1000
    deadlines.check()
    assert.equal(fired, ['a'])
    t = 1499
    deadlines.check()
    assert.equal(fired, ['a'])
    t = 1500
    deadlines.check()
    deadlines.check()
    assert.equal(fired, ['a', 'c'])
    assert.is(deadlines.pending, 0)
  } finally {
    deadlines.close()
  }
})

test('the real ticker cuts a response past its deadline', async () => {
  const deadlines = new ResponseDeadlines({ deadlineMs: 20 })
  // The ticker never keeps the process alive, so this test's own guard does.
  let guard: NodeJS.Timeout | undefined
  try {
    await new Promise<void>((resolve, reject) => {
      guard = setTimeout(() => { reject(new Error('the deadline did not fire within 20 s')) }, 20_000)
      deadlines.watch(resolve)
    })
    assert.is(deadlines.pending, 0)
  } finally {
    clearTimeout(guard)
    deadlines.close()
  }
})

test.run()
