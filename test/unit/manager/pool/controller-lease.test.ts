import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../../../core/log.ts'
import type { LeaseGrant } from '../../../../manager/catalog/leases.ts'
import { ControllerLease, type LeaseTerm } from '../../../../manager/pool/controller-lease.ts'

const logger = silentLogger()

/** A lease store whose answers the test scripts, and a clock it moves by hand. */
function rig (ttlMs = 60_000) {
  const answers: Array<LeaseGrant | undefined | Error> = []
  const released: number[] = []
  const terms: LeaseTerm[] = []
  let now = 0
  let slow = 0
  const lease = new ControllerLease({
    leases: {
      acquire: async () => {
        const a = answers.shift()
        now += slow
        if (a instanceof Error) throw a
        return a
      },
      release: async (_name, _holder, epoch) => { released.push(epoch) }
    },
    holder: 'me',
    onTerm: t => { terms.push(t) },
    logger,
    clock: () => now
  }, { ttlMs })
  return { lease, answers, released, terms, setSlow: (ms: number) => { slow = ms } }
}

test('a term begins when the lease is taken and ends when another manager holds it', async () => {
  const r = rig()
  r.answers.push({ epoch: 3, expiresAt: 0 }, { epoch: 3, expiresAt: 0 }, undefined)
  await r.lease.tick()
  assert.is(r.terms.length, 1)
  assert.is(r.terms[0].epoch, 3)
  assert.is(r.lease.epoch, 3)
  await r.lease.tick()
  assert.is(r.terms.length, 1, 'a renewal is the same term')
  assert.not.ok(r.terms[0].signal.aborted)
  await r.lease.tick()
  assert.ok(r.terms[0].signal.aborted, 'refused: the term is over')
  assert.is(r.lease.epoch, undefined)
  await r.lease.stop()
})

test('a lease taken anew (a new epoch) ends the old term and starts a new one', async () => {
  const r = rig()
  r.answers.push({ epoch: 1, expiresAt: 0 }, { epoch: 2, expiresAt: 0 })
  await r.lease.tick()
  await r.lease.tick()
  assert.is(r.terms.length, 2)
  assert.ok(r.terms[0].signal.aborted)
  assert.not.ok(r.terms[1].signal.aborted)
  await r.lease.stop()
  assert.ok(r.terms[1].signal.aborted)
  assert.equal(r.released, [2], 'a clean stop hands the lease over')
})

test('a renewal slower than the term could last begins nothing', async () => {
  const r = rig(1000)
  r.setSlow(900)
  r.answers.push({ epoch: 1, expiresAt: 0 })
  await r.lease.tick()
  assert.is(r.terms.length, 0)
  await r.lease.stop()
  assert.equal(r.released, [])
})

test('a term ends by itself when the lease cannot be renewed before its deadline', async () => {
  const answers: Array<LeaseGrant | Error> = [{ epoch: 1, expiresAt: 0 }]
  const terms: LeaseTerm[] = []
  const lease = new ControllerLease({
    leases: {
      acquire: async () => { const a = answers.shift() ?? new Error('database unreachable'); if (a instanceof Error) throw a; return a },
      release: async () => {}
    },
    holder: 'me',
    onTerm: t => { terms.push(t) },
    logger
  }, { ttlMs: 300 })
  lease.start()
  const until = Date.now() + 10_000
  while (terms[0]?.signal.aborted !== true && Date.now() < until) await new Promise(resolve => setTimeout(resolve, 20))
  assert.is(terms.length, 1)
  assert.ok(terms[0].signal.aborted, 'the term ended without a renewal')
  assert.match(String((terms[0].signal.reason as Error).message), /in time/)
  await lease.stop()
})

test('a lease renewed too rarely to be safe is refused', () => {
  assert.throws(() => new ControllerLease({ leases: { acquire: async () => undefined, release: async () => {} }, holder: 'me', onTerm: () => {}, logger }, { ttlMs: 100, tickMs: 90 }), /renewed well before/)
})

test.run()
