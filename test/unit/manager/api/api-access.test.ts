import { randomBytes } from 'node:crypto'
/**
 * The manager API's authorization matrix: every route against no token, a
 * wrong, revoked or expired one, and each role; private contents against
 * capabilities good, expired, forged, malformed and for another content.
 * One table: adding a case is one line. Real catalog, tokens, keys,
 * capabilities and deleter over a real HTTP socket; nodes are in memory.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Registry } from 'prom-client'
import { newContentKey } from '../../../../core/chunk-crypto.ts'
import { silentLogger } from '../../../../core/log.ts'
import { signRecord } from '../../../../core/signed-record.ts'
import { createApiHandler } from '../../../../manager/api/api.ts'
import { Capabilities } from '../../../../manager/api/capabilities.ts'
import { ContentDeleter } from '../../../../manager/publish/delete.ts'
import { KeyCustody } from '../../../../manager/catalog/key-custody.ts'
import { KeySealer } from '../../../../manager/catalog/key-sealing.ts'
import { ContentLifecycle } from '../../../../manager/catalog/content-lifecycle.ts'
import { createManagerMetrics } from '../../../../manager/metrics.ts'
import { NodeAdmin } from '../../../../manager/nodes/node-admin.ts'
import type { PublishRequest } from '../../../../manager/publish/publish.ts'
import { TokenStore } from '../../../../manager/catalog/tokens.ts'
import { makePool } from '../pool-fixture.ts'

const pool = await makePool(3)
const { catalog, db, peers } = pool
const tokens = new TokenStore(db, async e => { await catalog.recordEvent(e) })
const keys = new KeyCustody(db, new KeySealer(randomBytes(32)))
const privateKey = await generateKeyPair('Ed25519')
const peerId = peerIdFromPrivateKey(privateKey).toString()
let now = Date.now()
const capabilities = new Capabilities({ signer: { privateKey, peerId }, now: () => now })
const published: PublishRequest[] = []
const registry = new Registry()

const T = {
  admin: (await tokens.create({ role: 'admin', name: 'root' })).token,
  admin2: (await tokens.create({ role: 'admin', name: 'second' })).token,
  pubA: (await tokens.create({ role: 'publisher', name: 'alice' })).token,
  pubB: (await tokens.create({ role: 'publisher', name: 'bob' })).token,
  reader: (await tokens.create({ role: 'reader', name: 'viewer' })).token,
  join: (await tokens.create({ role: 'join', name: 'nodes' })).token,
  revoked: (await tokens.create({ role: 'admin', name: 'gone' })).token,
  expired: (await tokens.create({ role: 'admin', name: 'old', ttlSeconds: 1 }, { by: 'test', now: Date.now() - 10_000 })).token,
  wrong: 'cdn_not-a-token-of-this-pool'
}
await tokens.revoke((await tokens.identify(T.revoked)).id)
const idOf = async (t: string): Promise<string> => (await tokens.identify(t)).id

/** A visible content owned by `owner`'s token, with a key in custody. */
async function content (owner: string, priv: boolean, holders = [[0, 1]]): Promise<string> {
  const { id } = (await pool.addContent(holders, { replicas: 2 }))
  await db.prepare('UPDATE contents SET owner = ?, private = ? WHERE id = ?').run(await idOf(owner), priv ? 1 : 0, id)
  await keys.put(id, newContentKey())
  return id
}
const C = {
  publicA: await content(T.pubA, false),
  privateA: await content(T.pubA, true),
  privateB: await content(T.pubB, true),
  doomedA: await content(T.pubA, true),
  doomedB: await content(T.pubB, false)
}
const cap = async (id: string, ttl = 3600): Promise<string> => (await capabilities.issue(id, ttl)).capability
const CAP = {
  privateA: await cap(C.privateA),
  privateB: await cap(C.privateB),
  shortA: await cap(C.privateA, 1),
  forged: await (async () => {
    const [body, sig] = (await cap(C.privateB)).split('.')
    const b = JSON.parse(Buffer.from(body, 'base64url').toString())
    return `${Buffer.from(JSON.stringify({ ...b, content: C.privateA })).toString('base64url')}.${sig}`
  })(),
  foreign: await (async () => {
    const k = await generateKeyPair('Ed25519')
    return signRecord({ kind: 'capability', iss: peerIdFromPrivateKey(k).toString(), iat: now, exp: now + 3600_000, content: C.privateA } as never, k)
  })()
}

const handler = createApiHandler({
  catalog,
  keys,
  tokens,
  capabilities,
  staging: {} as any,
  publisher: {
    publish: async (req: PublishRequest) => {
      for await (const _ of req.body) { /* drain */ }
      published.push(req)
      return { id: 'bafy-stub', size: 0, chunks: 0, replicas: 1, key: 'k' }
    }
  } as any,
  deleter: new ContentDeleter({ catalog, lifecycle: new ContentLifecycle(catalog, keys), nodes: pool.nodes, logger: silentLogger() }),
  metricsRegistry: registry,
  metrics: createManagerMetrics(registry, async () => ({})),
  info: () => ({ peerId, multiaddrs: [], http: '', pool: peerId, managers: [] }),
  nodeAdmin: new NodeAdmin({ catalog, logger: silentLogger() }, { minCopies: 1, diskHighWater: 0.9, egressHighWater: 0.9, heartbeatMs: 1000 }),
  replication: () => ({ minCopies: 1, pendingActions: 0, lastRound: null }),
  reports: { submit: async () => ({ verifying: true }) },
  nodeList: async () => 'signed-list',
  logger: silentLogger()
})
const server = createServer(handler)
await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

test.after(async () => {
  await new Promise(resolve => server.close(resolve))
  await pool.close()
})

interface Call { status: number, body: any, text: string }
async function call (method: string, path: string, token?: string, headers: Record<string, string> = {}, body?: string): Promise<Call> {
  const h: Record<string, string> = { ...headers }
  if (token != null) h.authorization = `Bearer ${token}`
  const res = await fetch(`${base}${path}`, { method, headers: h, body })
  const text = await res.text()
  let parsed: any
  try { parsed = JSON.parse(text) } catch { parsed = undefined }
  return { status: res.status, body: parsed, text }
}

type Case = [what: string, method: string, path: string, token: string | undefined, want: number, headers?: Record<string, string>, body?: string]
const cap$ = (c: string): Record<string, string> => ({ 'x-cdn-capability': c })

const READ_ONLY: Case[] = [
  // listing needs admin, publisher or reader
  ['list, no token', 'GET', '/api/contents', undefined, 401],
  ['list, wrong token', 'GET', '/api/contents', T.wrong, 401],
  ['list, revoked token', 'GET', '/api/contents', T.revoked, 401],
  ['list, expired token', 'GET', '/api/contents', T.expired, 401],
  ['list, join token', 'GET', '/api/contents', T.join, 403],
  ['list, reader', 'GET', '/api/contents', T.reader, 200],
  ['list, publisher', 'GET', '/api/contents', T.pubA, 200],
  ['list, admin', 'GET', '/api/contents', T.admin, 200],
  ['list, malformed authorization', 'GET', '/api/contents', undefined, 401, { authorization: 'Token abc' }],
  // public contents resolve for anyone; a presented token is still checked
  ['public, no token', 'GET', `/api/contents/${C.publicA}`, undefined, 200],
  ['public, join token', 'GET', `/api/contents/${C.publicA}`, T.join, 200],
  ['public, revoked token', 'GET', `/api/contents/${C.publicA}`, T.revoked, 401],
  // private contents: capability, admin, reader or owner
  ['private, nothing', 'GET', `/api/contents/${C.privateA}`, undefined, 401],
  ['private, join token', 'GET', `/api/contents/${C.privateA}`, T.join, 403],
  ['private, another publisher', 'GET', `/api/contents/${C.privateA}`, T.pubB, 403],
  ['private, owner', 'GET', `/api/contents/${C.privateA}`, T.pubA, 200],
  ['private, reader', 'GET', `/api/contents/${C.privateA}`, T.reader, 200],
  ['private, admin', 'GET', `/api/contents/${C.privateA}`, T.admin, 200],
  ['private, expired token', 'GET', `/api/contents/${C.privateA}`, T.expired, 401],
  ['private, its capability', 'GET', `/api/contents/${C.privateA}`, undefined, 200, cap$(CAP.privateA)],
  ['private, capability of another content', 'GET', `/api/contents/${C.privateA}`, undefined, 403, cap$(CAP.privateB)],
  ['private, forged capability', 'GET', `/api/contents/${C.privateA}`, undefined, 403, cap$(CAP.forged)],
  ['private, foreign capability', 'GET', `/api/contents/${C.privateA}`, undefined, 403, cap$(CAP.foreign)],
  ['private, malformed capability', 'GET', `/api/contents/${C.privateA}`, undefined, 400, cap$('not-a-capability')],
  ['private, capability and a wrong token', 'GET', `/api/contents/${C.privateA}`, T.wrong, 401, cap$(CAP.privateA)],
  ['private, other publisher with a capability', 'GET', `/api/contents/${C.privateA}`, T.pubB, 200, cap$(CAP.privateA)],
  // nodes, events, replication health: any token but join
  ['nodes, no token', 'GET', '/api/nodes', undefined, 401],
  ['nodes, join', 'GET', '/api/nodes', T.join, 403],
  ['nodes, reader', 'GET', '/api/nodes', T.reader, 200],
  ['events, no token', 'GET', '/api/events', undefined, 401],
  ['events, join', 'GET', '/api/events', T.join, 403],
  ['events, publisher', 'GET', '/api/events', T.pubA, 200],
  ['health, no token', 'GET', '/api/health/replication', undefined, 401],
  ['health, reader', 'GET', '/api/health/replication', T.reader, 200],
  // pool operations and tokens: admin only
  ['drain, publisher', 'POST', `/api/nodes/${peers[2]}/drain`, T.pubA, 403],
  ['drain, reader', 'POST', `/api/nodes/${peers[2]}/drain`, T.reader, 403],
  ['drain, no token', 'POST', `/api/nodes/${peers[2]}/drain`, undefined, 401],
  ['node rm, publisher', 'DELETE', `/api/nodes/${peers[2]}`, T.pubA, 403],
  ['tokens, no token', 'GET', '/api/tokens', undefined, 401],
  ['tokens, publisher', 'GET', '/api/tokens', T.pubA, 403],
  ['tokens, reader', 'GET', '/api/tokens', T.reader, 403],
  ['tokens, admin', 'GET', '/api/tokens', T.admin, 200],
  ['create token, publisher', 'POST', '/api/tokens', T.pubA, 403, { 'content-type': 'application/json' }, '{"role":"admin","name":"me"}'],
  ['create token, bad role', 'POST', '/api/tokens', T.admin, 400, { 'content-type': 'application/json' }, '{"role":"root","name":"me"}'],
  ['create token, no name', 'POST', '/api/tokens', T.admin, 400, { 'content-type': 'application/json' }, '{"role":"reader"}'],
  ['create token, bad ttl', 'POST', '/api/tokens', T.admin, 400, { 'content-type': 'application/json' }, '{"role":"reader","name":"x","ttlSeconds":"1d"}'],
  ['create token, not JSON', 'POST', '/api/tokens', T.admin, 400, { 'content-type': 'application/json' }, '{"role":'],
  ['revoke token, publisher', 'DELETE', `/api/tokens/${await idOf(T.reader)}`, T.pubA, 403],
  ['revoke token, malformed id', 'DELETE', '/api/tokens/xyz', T.admin, 400],
  ['revoke token, unknown id', 'DELETE', '/api/tokens/000000000000', T.admin, 404],
  // share and delete: owner or admin
  ['share, no token', 'POST', `/api/contents/${C.privateA}/share`, undefined, 401],
  ['share, another publisher', 'POST', `/api/contents/${C.privateA}/share`, T.pubB, 403],
  ['share, reader', 'POST', `/api/contents/${C.privateA}/share`, T.reader, 403],
  ['share, bad ttl', 'POST', `/api/contents/${C.privateA}/share`, T.pubA, 400, { 'content-type': 'application/json' }, '{"ttlSeconds":0}'],
  ['share, ttl over a year', 'POST', `/api/contents/${C.privateA}/share`, T.pubA, 400, { 'content-type': 'application/json' }, '{"ttlSeconds":40000000}'],
  ['delete, no token', 'DELETE', `/api/contents/${C.privateA}`, undefined, 401],
  ['delete, another publisher', 'DELETE', `/api/contents/${C.privateA}`, T.pubB, 403],
  ['delete, reader', 'DELETE', `/api/contents/${C.privateA}`, T.reader, 403],
  ['delete, join', 'DELETE', `/api/contents/${C.privateA}`, T.join, 403],
  // publish: publisher or admin
  ['publish, no token', 'POST', '/api/publish', undefined, 401, {}, 'x'],
  ['publish, reader', 'POST', '/api/publish', T.reader, 403, {}, 'x'],
  ['publish, join', 'POST', '/api/publish', T.join, 403, {}, 'x'],
  ['publish, revoked', 'POST', '/api/publish', T.revoked, 401, {}, 'x'],
  ['publish, bad private flag', 'POST', '/api/publish', T.pubA, 400, { 'x-cdn-private': 'yes' }, 'x'],
  // no token needed
  ['info', 'GET', '/api/info', undefined, 200],
  ['metrics', 'GET', '/metrics', undefined, 200],
  ['manifest of a private content', 'GET', `/manifest/${C.privateA}`, undefined, 200]
]

test('the authorization matrix: each route, each credential', async () => {
  const wrong: string[] = []
  for (const [what, method, path, token, want, headers, body] of READ_ONLY) {
    const r = await call(method, path, token, headers, body)
    if (r.status !== want) wrong.push(`${what}: ${method} ${path} answered ${r.status}, expected ${want} (${r.text.slice(0, 160)})`)
  }
  assert.equal(wrong, [])
  assert.is((await catalog.getVisible(C.privateA))?.id, C.privateA, 'no refused delete deleted anything')
  assert.is(published.length, 0, 'no refused publish reached the publisher')
})

test('a refusal of a private content names neither its key, its name nor its holders', async () => {
  const name = (await catalog.getVisible(C.privateA))!.name
  for (const [token, headers] of [[undefined, {}], [T.pubB, {}], [T.join, {}], [undefined, cap$(CAP.forged)], [undefined, cap$(CAP.privateB)]] as Array<[string | undefined, Record<string, string>]>) {
    const r = await call('GET', `/api/contents/${C.privateA}`, token, headers)
    assert.ok(r.status === 401 || r.status === 403, r.text)
    assert.equal(Object.keys(r.body), ['error'])
    assert.not.ok(r.text.includes(name) || peers.some(p => r.text.includes(p)) || r.text.includes('node-'), r.text)
  }
})

test('an expired capability is refused with 403 once its time is past', async () => {
  assert.is((await call('GET', `/api/contents/${C.privateA}`, undefined, cap$(CAP.shortA))).status, 200)
  const saved = now
  now += 2000
  const r = await call('GET', `/api/contents/${C.privateA}`, undefined, cap$(CAP.shortA))
  now = saved
  assert.is(r.status, 403)
  assert.match(r.body.error.message, /expired/)
})

test('listings show private and owner, and a publisher sees only its own private contents', async () => {
  const ids = async (t: string): Promise<string[]> => (await call('GET', '/api/contents', t)).body.contents.map((c: any) => c.id)
  const forA = await ids(T.pubA)
  assert.ok(forA.includes(C.publicA) && forA.includes(C.privateA) && !forA.includes(C.privateB))
  const forB = await ids(T.pubB)
  assert.ok(forB.includes(C.publicA) && !forB.includes(C.privateA) && forB.includes(C.privateB))
  for (const t of [T.reader, T.admin]) {
    const all = await ids(t)
    assert.ok(all.includes(C.privateA) && all.includes(C.privateB))
  }
  const entry = (await call('GET', '/api/contents', T.admin)).body.contents.find((c: any) => c.id === C.privateA)
  assert.equal([entry.private, entry.owner], [true, await idOf(T.pubA)])
})

test('the owner and admins share: a capability that resolves the content', async () => {
  const r = await call('POST', `/api/contents/${C.privateA}/share`, T.pubA, { 'content-type': 'application/json' }, '{"ttlSeconds":600}')
  assert.is(r.status, 201, r.text)
  assert.equal(Object.keys(r.body).sort(), ['capability', 'expiresAt', 'id'])
  assert.is(Date.parse(r.body.expiresAt), now + 600_000)
  assert.is((await call('GET', `/api/contents/${C.privateA}`, undefined, cap$(r.body.capability))).status, 200)
  const byAdmin = await call('POST', `/api/contents/${C.privateB}/share`, T.admin)
  assert.is(byAdmin.status, 201, 'an empty body means the default lifetime')
  assert.is(Date.parse(byAdmin.body.expiresAt), now + 24 * 3600_000)
})

test('publishing records the token as owner and the private flag', async () => {
  const r = await call('POST', '/api/publish', T.pubA, { 'x-cdn-private': '1', 'x-cdn-name': 'secret.mp4' }, 'bytes')
  assert.is(r.status, 201, r.text)
  assert.is(r.body.private, true)
  const last = published.at(-1)!
  assert.equal([last.owner, last.private, last.publisher], [await idOf(T.pubA), true, await idOf(T.pubA)])
  assert.is((await call('POST', '/api/publish', T.admin, {}, 'bytes')).status, 201, 'admins publish too')
  assert.is(published.at(-1)!.private, false)
})

test('deletes: another publisher 403, the owner and admins 200', async () => {
  assert.is((await call('DELETE', `/api/contents/${C.doomedA}`, T.pubB)).status, 403)
  assert.ok(await catalog.getVisible(C.doomedA))
  assert.is((await call('DELETE', `/api/contents/${C.doomedA}`, T.pubA)).status, 200)
  assert.is(await catalog.getVisible(C.doomedA), undefined)
  assert.is((await call('DELETE', `/api/contents/${C.doomedB}`, T.admin)).status, 200)
  assert.is((await call('DELETE', `/api/contents/${C.doomedB}`, T.admin)).status, 404)
})

test('tokens through the API: created, listed without secrets, revoked and then refused with 401', async () => {
  const made = await call('POST', '/api/tokens', T.admin, { 'content-type': 'application/json' }, '{"role":"reader","name":"tv","ttlSeconds":3600}')
  assert.is(made.status, 201, made.text)
  assert.equal(Object.keys(made.body).sort(), ['expiresAt', 'id', 'name', 'role', 'token'])
  assert.is((await call('GET', '/api/contents', made.body.token)).status, 200)
  const listed = await call('GET', '/api/tokens', T.admin)
  assert.ok(listed.body.tokens.some((t: any) => t.id === made.body.id && t.role === 'reader' && t.revoked === false))
  assert.not.ok(listed.text.includes(made.body.token))
  const revoked = await call('DELETE', `/api/tokens/${made.body.id}`, T.admin)
  assert.equal([revoked.status, revoked.body], [200, { id: made.body.id, revoked: true }])
  assert.is((await call('GET', '/api/contents', made.body.token)).status, 401)
  assert.is((await call('DELETE', `/api/tokens/${made.body.id}`, T.admin)).status, 200, 'revoking twice is harmless')
  const events = (await call('GET', '/api/events', T.admin)).body.events
  assert.ok(events.some((e: any) => e.kind === 'token-revoked' && e.detail.id === made.body.id))
})

test('admins drain and remove nodes', async () => {
  assert.is((await call('POST', `/api/nodes/${peers[2]}/drain`, T.admin2)).status, 202)
  assert.is((await call('DELETE', `/api/nodes/${peers[2]}`, T.admin2)).status, 200)
})

test.run()
