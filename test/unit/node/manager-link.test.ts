import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../../core/log.ts'
import type { NodeToManager } from '../../../core/wire.ts'
import { ManagerLink, type NodeReport } from '../../../node/manager-link.ts'

const logger = silentLogger()

async function waitFor (what: string, check: () => boolean, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs
  while (!check()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`)
    await sleep(5)
  }
}

function report (): NodeReport {
  return { http: 'http://127.0.0.1:9', capacity: 1000, used: 10, egressRate: 5, blobs: 1, contents: {}, held: [] }
}

test('joins after failures, heartbeats, and joins again when the manager forgets it', async () => {
  const sent: NodeToManager[] = []
  let joins = 0
  let beats = 0
  const link = new ManagerLink({
    logger,
    report,
    call: async (request) => {
      sent.push(request)
      if (request.type === 'join') {
        joins++
        if (joins === 1) throw new Error('manager unreachable')
        if (joins === 2) return { type: 'error', code: 'ERR_SHUTTING_DOWN', message: 'manager stopping' }
        return { type: 'joined', heartbeatMs: 5 }
      }
      beats++
      return { type: 'ack', known: beats !== 3 }
    }
  }, { joinToken: 'T', zone: 'eu', retryMinMs: 1, retryMaxMs: 5 })
  link.start()
  try {
    await waitFor('a second successful join', () => link.stats.joins >= 2)
  } finally {
    await link.stop()
  }
  const types = sent.map(m => m.type)
  assert.equal(types.slice(0, 7), ['join', 'join', 'join', 'heartbeat', 'heartbeat', 'heartbeat', 'join'])
  const join = sent[0]
  assert.ok(join.type === 'join')
  assert.is(join.token, 'T')
  assert.is(join.zone, 'eu')
  assert.is(join.http, 'http://127.0.0.1:9')
  assert.is('egressCap' in join, false)
  const beat = sent[3]
  assert.ok(beat.type === 'heartbeat')
  assert.is(beat.used, 10)
  assert.is(beat.egressRate, 5)
})

test('a failed heartbeat is retried without joining again', async () => {
  const sent: string[] = []
  let beats = 0
  const link = new ManagerLink({
    logger,
    report,
    call: async (request) => {
      sent.push(request.type)
      if (request.type === 'join') return { type: 'joined', heartbeatMs: 5 }
      beats++
      if (beats === 1) throw new Error('stream reset')
      return { type: 'ack', known: true }
    }
  }, { joinToken: 'T', retryMinMs: 1, retryMaxMs: 2 })
  link.start()
  try {
    await waitFor('two acknowledged heartbeats', () => link.stats.heartbeats >= 2)
  } finally {
    await link.stop()
  }
  assert.equal(sent.slice(0, 4), ['join', 'heartbeat', 'heartbeat', 'heartbeat'])
})

test('stop cancels a call in progress and returns', async () => {
  let aborted = false
  let calls = 0
  const link = new ManagerLink({
    logger,
    report,
    call: async (_request, signal) => {
      calls++
      await new Promise((_resolve, reject) => {
        signal.addEventListener('abort', () => { aborted = true; reject(signal.reason) }, { once: true })
      })
    }
  }, { joinToken: 'T' })
  link.start()
  await waitFor('the join call', () => calls === 1)
  await link.stop()
  assert.is(aborted, true)
  assert.is(calls, 1)
  await link.stop()
})

test('the configured interval overrides what the manager asks', async () => {
  const link = new ManagerLink({
    logger,
    report,
    call: async (request) => request.type === 'join' ? { type: 'joined', heartbeatMs: 3_600_000 } : { type: 'ack', known: true }
  }, { joinToken: 'T', heartbeatMs: 5 })
  link.start()
  try {
    // An hour from the manager would never produce a heartbeat here; 5 ms from the config does.
    await waitFor('a heartbeat', () => link.stats.heartbeats >= 1)
  } finally {
    await link.stop()
  }
})

test('a join answer without a usable interval counts as a failed join', async () => {
  const sent: string[] = []
  let joins = 0
  const link = new ManagerLink({
    logger,
    report,
    call: async (request) => {
      sent.push(request.type)
      if (request.type === 'join') return { type: 'joined', heartbeatMs: ++joins === 1 ? 'soon' : 5 }
      return { type: 'ack', known: true }
    }
  }, { joinToken: 'T', retryMinMs: 1, retryMaxMs: 2 })
  link.start()
  try {
    await waitFor('a heartbeat', () => link.stats.heartbeats >= 1)
  } finally {
    await link.stop()
  }
  assert.equal(sent.slice(0, 3), ['join', 'join', 'heartbeat'])
  assert.is(link.stats.joins, 1)
})

const CONTENT_A = 'bagaaierafvyrmqvxe2yeialcpsu7xlbs6xefgd5rsa6mjwycewdrpeq2jcaq'

test('a join refused for its token ends the link at once, with the reason, and no retry', async () => {
  for (const code of ['ERR_UNAUTHORIZED', 'ERR_FORBIDDEN']) {
    let joins = 0
    const ends: unknown[] = []
    const link = new ManagerLink({
      logger,
      report,
      onEnd: (end) => { ends.push(end) },
      call: async () => {
        joins++
        return { type: 'error', code, message: 'invalid join token' }
      }
    }, { joinToken: 'T', retryMinMs: 1, retryMaxMs: 2 })
    link.start()
    try {
      await waitFor('the refusal', () => link.stats.refused)
      await sleep(30)
    } finally {
      await link.stop()
    }
    assert.is(joins, 1, 'no retry after a token refusal')
    assert.equal(ends, [{ kind: 'refused', message: 'invalid join token' }])
    assert.is(link.stats.joins, 0)
  }
})

test('ERR_REMOVED, on a heartbeat or a join, ends the link as removed', async () => {
  for (const on of ['heartbeat', 'join']) {
    const ends: Array<{ kind: string }> = []
    let calls = 0
    const link = new ManagerLink({
      logger,
      report,
      onEnd: (end) => { ends.push(end) },
      call: async (request) => {
        calls++
        if (request.type === on) return { type: 'error', code: 'ERR_REMOVED', message: 'removed by an operator' }
        return request.type === 'join' ? { type: 'joined', heartbeatMs: 5 } : { type: 'ack', known: true, drop: [] }
      }
    }, { joinToken: 'T', retryMinMs: 1, retryMaxMs: 2 })
    link.start()
    try {
      await waitFor('the removal', () => link.stats.removed)
      const after = calls
      await sleep(30)
      assert.is(calls, after, 'nothing more is sent')
    } finally {
      await link.stop()
    }
    assert.equal(ends.map(e => e.kind), ['removed'], on)
  }
})

test("an ack's drop list is handed over before the next heartbeat; a malformed one is a failed heartbeat", async () => {
  const drops: string[][] = []
  let beats = 0
  const link = new ManagerLink({
    logger,
    report,
    onDrop: async (contents) => { drops.push(contents) },
    call: async (request) => {
      if (request.type === 'join') return { type: 'joined', heartbeatMs: 5 }
      beats++
      if (beats === 1) return { type: 'ack', known: true, drop: ['not-a-cid'] }
      if (beats === 2) return { type: 'ack', known: true, drop: [CONTENT_A, CONTENT_A] }
      return { type: 'ack', known: true }
    }
  }, { joinToken: 'T', retryMinMs: 1, retryMaxMs: 2 })
  link.start()
  try {
    await waitFor('three heartbeats', () => beats >= 3)
  } finally {
    await link.stop()
  }
  assert.equal(drops, [[CONTENT_A]], 'the malformed list dropped nothing; the good one once, without repeats')
  assert.is(link.stats.dropped, 1)
})

test.run()
