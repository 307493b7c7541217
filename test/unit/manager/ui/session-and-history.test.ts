/**
 * The console's session store (random ids, expiry, a bounded count, a
 * cookie that scripts cannot read and other sites cannot send) and its
 * history sampler (copies and demand per content per round).
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { HistorySampler } from '../../../../manager/ui/history-sampler.ts'
import { marksOf } from '../../../../manager/ui/console-data.ts'
import { readCookie, SESSION_COOKIE, sessionCookie, SessionStore } from '../../../../manager/ui/session-store.ts'
import type { PolicyContent, PolicyNode } from '../../../../manager/replication/policy-types.ts'

test('a session has a random id, remembers only the token id, and ends at its expiry', () => {
  let now = 0
  const store = new SessionStore({ ttlMs: 1000, now: () => now })
  const a = store.create('aaaaaaaaaaaa')
  const b = store.create('aaaaaaaaaaaa')
  assert.match(a.id, /^[A-Za-z0-9_-]{43}$/)
  assert.is.not(a.id, b.id)
  assert.equal(Object.keys(a).sort(), ['createdAt', 'expiresAt', 'id', 'tokenId'])
  assert.is(store.get(a.id)?.tokenId, 'aaaaaaaaaaaa')
  assert.is(store.get('x'.repeat(43)), undefined, 'an unknown id is no session')
  assert.is(store.get('bad id'), undefined)
  assert.is(store.get(undefined), undefined)
  now = 999
  assert.ok(store.get(a.id))
  now = 1000
  assert.is(store.get(a.id), undefined, 'expired')
  store.delete(b.id)
  assert.is(store.get(b.id), undefined)
})

test('sessions are bounded: the oldest goes first', () => {
  const store = new SessionStore({ maxSessions: 2 })
  const a = store.create('t1')
  const b = store.create('t2')
  const c = store.create('t3')
  assert.is(store.size, 2)
  assert.is(store.get(a.id), undefined)
  assert.ok(store.get(b.id))
  assert.ok(store.get(c.id))
})

test('the cookie is HttpOnly, SameSite=Strict, scoped to /ui, Secure over HTTPS, and read back by name', () => {
  const v = sessionCookie('abc', 60, false)
  assert.is(v, `${SESSION_COOKIE}=abc; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict`)
  assert.match(sessionCookie('abc', 60, true), /; Secure$/)
  assert.is(readCookie(`theme=dark; ${SESSION_COOKIE}=abc; x=1`, SESSION_COOKIE), 'abc')
  assert.is(readCookie('theme=dark', SESSION_COOKIE), undefined)
  assert.is(readCookie(undefined, SESSION_COOKIE), undefined)
})

const node = (peerId: string, state: PolicyNode['state'] = 'alive'): PolicyNode => ({ peerId, state, capacity: 1e9, used: 0, egressCap: 1e6, egressRate: 0 })
const content = (id: string, demand: number, holders: string[][], bad: string[] = []): PolicyContent =>
  ({ id, base: 3, demand, chunks: holders.map((h, i) => ({ cid: `${id}-${i}`, size: 100, holders: h, bad })) })

test('the sampler records min/max healthy copies, demand and wanted copies per content per round', () => {
  const h = new HistorySampler({ maxSamples: 3 })
  const nodes = [node('a'), node('b'), node('c'), node('d', 'dead')]
  const report = (wanted: number, copyBytes = 0) => ({
    wanted: new Map([['x', wanted]]),
    actions: copyBytes > 0 ? [{ kind: 'copy' as const, reason: 'mirror' as const, content: 'x', cid: 'x-0', size: copyBytes, from: ['a'], to: 'd' }] : [],
    underReplicated: 0,
    deferred: 0
  })
  h.record(1000, { nodes, contents: [content('x', 0, [['a', 'b', 'c'], ['a', 'b', 'd']])] }, report(3), 500)
  h.record(2000, { nodes, contents: [content('x', 5e6, [['a', 'b', 'c'], ['a', 'b', 'c']], ['c'])] }, report(5, 100), 500)
  assert.equal(h.series('x'), { t: [1000, 2000], demand: [0, 5e6], min: [2, 2], max: [3, 2], wanted: [3, 5] }, 'dead holders and bad copies do not count')
  assert.equal(h.latest('x'), { t: 2000, demand: 5e6, min: 2, max: 2, wanted: 5 })
  assert.equal(h.rounds().map(r => [r.budget, r.planned]), [[500, 0], [500, 100]])
  h.record(3000, { nodes, contents: [content('x', 0, [['a']])] }, report(3), 500)
  h.record(4000, { nodes, contents: [content('x', 0, [['a']])] }, report(3), 500)
  assert.equal(h.series('x').t, [2000, 3000, 4000], 'bounded per content')
  h.record(5000, { nodes, contents: [] }, report(3), 500)
  assert.equal(h.series('x').t, [], 'a deleted content is forgotten')
  assert.is(h.latest('x'), undefined)
})

test('marks are the moves of one content, oldest first, with their reason', () => {
  const ev = (id: number, kind: string, content: string, reason?: string) => ({ id, at: new Date(id * 1000).toISOString(), kind: kind as any, content, node: 'n', detail: reason == null ? null : { reason, chunks: 2 } })
  const events = [ev(5, 'copies-removed', 'x', 'trim'), ev(4, 'node-dead', 'x'), ev(3, 'copies-added', 'y', 'mirror'), ev(2, 'copies-added', 'x', 'mirror'), ev(1, 'copy-failed', 'x')]
  assert.equal(marksOf(events, 'x').map(m => [m.at, m.kind, m.reason, m.chunks]), [
    [1000, 'copy-failed', 'failed', 0], [2000, 'copies-added', 'mirror', 2], [5000, 'copies-removed', 'trim', 2]
  ])
})

test.run()
