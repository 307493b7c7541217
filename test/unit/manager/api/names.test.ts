/**
 * The manager's side of names (manager/api/name-service.ts, name-routes.ts)
 * over a real HTTP socket and a real catalog: who may publish under a name
 * and when that is decided, keep through the delete path, signed records
 * that verify against the pool, and who may read a private name or list
 * generations.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { BadInputError, ForbiddenError, NotFoundError } from '../../../../core/errors.ts'
import { sendError } from '../../../../core/http-reply.ts'
import { manifestCid } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import { verifyRecord, type NameRecordBody } from '../../../../core/signed-record.ts'
import { Capabilities } from '../../../../manager/api/capabilities.ts'
import { nameRoutes } from '../../../../manager/api/name-routes.ts'
import { NameService } from '../../../../manager/api/name-service.ts'
import type { ContentRow } from '../../../../manager/catalog/catalog.ts'
import { NameStore } from '../../../../manager/catalog/names.ts'
import { openEngine } from '../../../../manager/catalog/open.ts'
import { TokenStore, type Principal } from '../../../../manager/catalog/tokens.ts'
import { rejects } from '../../../support/rejects.ts'

const dir = await mkdtemp(join(tmpdir(), 'cdn-names-api-'))
const db = await openEngine({ sqlite: join(dir, 'catalog.db') })
const tokens = new TokenStore(db, async () => {})
const store = new NameStore(db)
const privateKey = await generateKeyPair('Ed25519')
const pool = { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() }
const capabilities = new Capabilities({ signer: pool })
/** What the deleter was asked to delete, in order; contents named here are gone from `visible`. */
const deleted: string[] = []
const visible = new Map<string, Pick<ContentRow, 'private' | 'owner'>>()
const service = new NameService({
  names: store,
  deleter: { delete: async (id) => { deleted.push(id); visible.delete(id); return { id, nodes: 0, unreachable: [] } } },
  signer: pool,
  logger: silentLogger()
})

const T = {
  admin: (await tokens.create({ role: 'admin', name: 'root' })).token,
  alice: (await tokens.create({ role: 'publisher', name: 'alice' })).token,
  bob: (await tokens.create({ role: 'publisher', name: 'bob' })).token,
  reader: (await tokens.create({ role: 'reader', name: 'viewer' })).token
}
const who = async (t: string): Promise<Principal> => await tokens.authorize(`Bearer ${t}`, ['admin', 'publisher', 'reader'])
let n = 0
/** A content just made visible by `owner`, as the publisher would. */
async function published (owner: string, priv = false): Promise<{ id: string, size: number }> {
  const id = manifestCid(Buffer.from(`content ${++n}`)).toString()
  visible.set(id, { private: priv, owner: (await who(owner)).id })
  return { id, size: 1000 + n }
}
async function publishAs (token: string, name: string, opts: { keep?: number, priv?: boolean } = {}): Promise<{ id: string, seq: number }> {
  const p = await who(token)
  const named = await service.beforePublish({ 'x-cdn-publish-name': encodeURIComponent(name), ...(opts.keep != null ? { 'x-cdn-keep': String(opts.keep) } : {}) }, p)
  const c = await published(token, opts.priv)
  const g = await service.afterPublish(named!, c, p)
  return { id: c.id, seq: g.seq }
}

const routes = nameRoutes({ names: store, service, catalog: { getVisible: async (id: string) => visible.get(id) as ContentRow | undefined, recordEvent: async () => {} }, tokens, capabilities })
const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const url = new URL(req.url ?? '/', 'http://x')
  for (const r of routes) {
    const m = r.pattern.exec(url.pathname)
    if (m != null) {
      const handler = r.methods[req.method ?? 'GET']
      if (handler == null) break
      handler(req, res, m, url).catch((err: unknown) => { sendError(res, err) })
      return
    }
  }
  sendError(res, new NotFoundError('no route'))
})
await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
test.after(async () => {
  server.close()
  await db.close()
  await rm(dir, { recursive: true, force: true })
})

async function call (path: string, headers: Record<string, string> = {}): Promise<{ status: number, json: any }> {
  const res = await fetch(base + path, { headers })
  return { status: res.status, json: await res.json() }
}
const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` })

test('generations are numbered in order; the record of the newest verifies against the pool and names it', async () => {
  const a = await publishAs(T.alice, 'films/launch.mp4')
  const b = await publishAs(T.alice, 'films/launch.mp4')
  assert.equal([a.seq, b.seq], [1, 2])
  const r = await call(`/api/names/${encodeURIComponent('films/launch.mp4')}`)
  assert.is(r.status, 200)
  assert.equal([r.json.seq, r.json.content], [2, b.id])
  const { body } = await verifyRecord<NameRecordBody>(r.json.record, { kind: 'name-record', trusted: [pool.peerId] })
  assert.equal([body.name, body.seq, body.content], ['films/launch.mp4', 2, b.id])
  const days = (body.exp - body.iat) / 86400_000
  assert.is(days, 30)
  assert.is((await call('/api/names/nobody')).status, 404)
  assert.is((await call('/api/names/..%2Fetc')).status, 400)
})

test('another publisher is refused before uploading a byte; an admin may add to any name', async () => {
  await publishAs(T.alice, 'alice/site')
  await rejects(async () => await service.beforePublish({ 'x-cdn-publish-name': 'alice%2Fsite' }, await who(T.bob)), (e: unknown) => e instanceof ForbiddenError)
  assert.is((await publishAs(T.admin, 'alice/site')).seq, 2)
  await rejects(async () => await service.beforePublish({ 'x-cdn-keep': '2' }, await who(T.bob)), (e: unknown) => e instanceof BadInputError)
  await rejects(async () => await service.beforePublish({ 'x-cdn-publish-name': '%2Fabs' }, await who(T.bob)), (e: unknown) => e instanceof BadInputError)
  await rejects(async () => await service.beforePublish({ 'x-cdn-publish-name': 'x', 'x-cdn-keep': '0' }, await who(T.bob)), (e: unknown) => e instanceof BadInputError)
})

test('a name claimed by another publisher during the upload: the new content is deleted and the publish refused', async () => {
  const bobAsked = await service.beforePublish({ 'x-cdn-publish-name': 'race' }, await who(T.bob))
  await publishAs(T.alice, 'race')
  const content = await published(T.bob)
  await rejects(async () => await service.afterPublish(bobAsked!, content, await who(T.bob)), (e: unknown) => e instanceof ForbiddenError)
  assert.ok(deleted.includes(content.id), 'the orphan publish was deleted')
  assert.equal((await store.generations('race')).length, 1)
})

test('keep N deletes the contents of older generations through the deleter, and their rows go', async () => {
  const g = [await publishAs(T.alice, 'nightly.img', { keep: 2 }), await publishAs(T.alice, 'nightly.img'), await publishAs(T.alice, 'nightly.img')]
  assert.ok(deleted.includes(g[0].id) && !deleted.includes(g[1].id) && !deleted.includes(g[2].id))
  const list = await call(`/api/names/nightly.img/generations`, bearer(T.alice))
  assert.is(list.status, 200)
  assert.equal(list.json.generations.map((x: any) => [x.seq, x.content]), [[2, g[1].id], [3, g[2].id]])
  assert.equal(list.json.generations.map((x: any) => x.added), list.json.generations.map((x: any) => x.size))
  assert.is(list.json.keep, 2)
})

test('generations are listed to the owner, admins and readers only', async () => {
  await publishAs(T.alice, 'listing')
  assert.is((await call('/api/names/listing/generations')).status, 401)
  assert.is((await call('/api/names/listing/generations', bearer(T.bob))).status, 403)
  for (const t of [T.alice, T.admin, T.reader]) assert.is((await call('/api/names/listing/generations', bearer(t))).status, 200)
  assert.is((await call('/api/names/nothing-here/generations', bearer(T.admin))).status, 404)
})

test('a private name resolves only as its content would: a capability for it, or a token that may read it', async () => {
  const p = await publishAs(T.alice, 'diary', { priv: true })
  assert.is((await call('/api/names/diary')).status, 401)
  assert.is((await call('/api/names/diary', bearer(T.bob))).status, 403)
  assert.is((await call('/api/names/diary', bearer(T.reader))).status, 200)
  assert.is((await call('/api/names/diary', bearer(T.alice))).status, 200)
  const cap = (await capabilities.issue(p.id)).capability
  assert.is((await call('/api/names/diary', { 'x-cdn-capability': cap })).status, 200)
  const other = (await capabilities.issue(manifestCid(Buffer.from('other')).toString())).capability
  assert.is((await call('/api/names/diary', { 'x-cdn-capability': other })).status, 403)
  assert.is((await call('/api/names/diary', bearer('cdn_wrong'))).status, 401)
})

test('a name capability, from its owner or an admin, opens every generation of that name, later ones included, and no other name', async () => {
  const first = await publishAs(T.alice, 'letters', { priv: true })
  const share = async (token: string, name: string, ttlSeconds?: number): Promise<{ status: number, json: any }> => {
    const res = await fetch(`${base}/api/names/${encodeURIComponent(name)}/share`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify(ttlSeconds == null ? {} : { ttlSeconds }) })
    return { status: res.status, json: await res.json() }
  }
  assert.is((await share(T.bob, 'letters')).status, 403, 'not the owner')
  assert.is((await share(T.alice, 'no-such-name')).status, 404)
  assert.is((await share(T.alice, 'letters', 0)).status, 400)
  const issued = await share(T.alice, 'letters')
  assert.is(issued.status, 201)
  assert.is((await share(T.admin, 'letters')).status, 201, 'an admin may share any name')
  const cap = { 'x-cdn-capability': issued.json.capability }
  assert.is((await call('/api/names/letters', cap)).json.content, first.id)
  const second = await publishAs(T.alice, 'letters', { priv: true })
  const now = await call('/api/names/letters', cap)
  assert.equal([now.status, now.json.content], [200, second.id], 'a generation published after the share opens too')
  // The content route takes the same capability for any generation of the name, and for nothing else.
  assert.ok(await capabilities.check(issued.json.capability, first.id, async () => await store.namesOf(first.id)))
  const stranger = await publishAs(T.bob, 'other-letters', { priv: true })
  assert.is((await call('/api/names/other-letters', cap)).status, 403, 'another name stays closed')
  let refused = false
  await capabilities.check(issued.json.capability, stranger.id, async () => await store.namesOf(stranger.id)).catch(() => { refused = true })
  assert.ok(refused, 'the content of another name stays closed')
  refused = false
  await capabilities.check(issued.json.capability, first.id).catch(() => { refused = true })
  assert.ok(refused, 'where names are not consulted, a name capability opens nothing')
})

test('a name whose newest generation was deleted answers 404, and its numbers never go back', async () => {
  const a = await publishAs(T.alice, 'removed')
  visible.delete(a.id)
  assert.is((await call('/api/names/removed')).status, 404)
  assert.is((await publishAs(T.alice, 'removed')).seq, 2)
})

test.run()
