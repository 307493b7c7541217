/**
 * Tokens with roles and lifetimes (manager/tokens.ts), the first admin token
 * (manager/admin-token.ts), and the upgrade of a first-release tokens table.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { BadInputError, ConflictError, ForbiddenError, NotFoundError, UnauthorizedError } from '../../../../core/errors.ts'
import { silentLogger } from '../../../../core/log.ts'
import { ensureAdminToken } from '../../../../manager/api/admin-token.ts'
import { Catalog } from '../../../../manager/catalog/catalog.ts'
import { Db } from '../../../../manager/catalog/sqlite.ts'
import { hashToken, TokenStore } from '../../../../manager/catalog/tokens.ts'
import type { SqlEngine } from '../../../../manager/catalog/engine.ts'
import { eachEngine } from '../../../support/catalog-engines.ts'
import { rejects } from '../../../support/rejects.ts'

const dirs: string[] = []
async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cdn-tokens-'))
  dirs.push(d)
  return d
}
test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

const is = (cls: new (...a: any[]) => Error) => (e: unknown): boolean => e instanceof cls

async function store (open: () => Promise<SqlEngine>): Promise<{ db: SqlEngine, tokens: TokenStore }> {
  const db = await open()
  const catalog = new Catalog(db)
  return { db, tokens: new TokenStore(db, async e => { await catalog.recordEvent(e) }) }
}

eachEngine(test, 'a created token has a public id, its role and name, and is shown in clear only once', async (open) => {
  const { db, tokens } = await store(open)
  const { token, info } = (await tokens.create({ role: 'reader', name: 'dashboard' }))
  assert.match(info.id, /^[0-9a-f]{12}$/)
  assert.equal({ role: info.role, name: info.name, expiresAt: info.expiresAt, revokedAt: info.revokedAt }, { role: 'reader', name: 'dashboard', expiresAt: null, revokedAt: null })
  assert.ok(token.length >= 32 && token.startsWith('cdn_'))
  assert.equal(await tokens.identify(token), { id: info.id, role: 'reader', name: 'dashboard' })
  const listed = await tokens.list()
  assert.is(listed.length, 1)
  assert.not.ok(JSON.stringify(listed).includes(token), 'listing never shows the token')
  await db.close()
})

eachEngine(test, 'roles: authorize lets the listed roles through, 403 for other roles, 401 for none or a wrong one', async (open) => {
  const { db, tokens } = await store(open)
  const made = Object.fromEntries(await Promise.all((['admin', 'publisher', 'reader', 'join'] as const).map(async r => [r, (await tokens.create({ role: r, name: r })).token])))
  const bearer = (t: string): string => `Bearer ${t}`
  assert.is((await tokens.authorize(bearer(made.admin), ['admin'])).role, 'admin')
  assert.is((await tokens.authorize(bearer(made.publisher), ['admin', 'publisher'])).role, 'publisher')
  await rejects(async () => await tokens.authorize(bearer(made.publisher), ['admin']), is(ForbiddenError))
  await rejects(async () => await tokens.authorize(bearer(made.reader), ['admin', 'publisher']), is(ForbiddenError))
  await rejects(async () => await tokens.authorize(bearer(made.join), ['admin', 'publisher', 'reader']), is(ForbiddenError))
  await rejects(async () => await tokens.authorize(undefined, ['admin']), is(UnauthorizedError))
  await rejects(async () => await tokens.authorize(bearer('cdn_not-a-token'), ['admin']), is(UnauthorizedError))
  await rejects(async () => await tokens.authorize(`Basic ${made.admin}`, ['admin']), is(UnauthorizedError))
  // The control protocol's join takes join tokens only.
  assert.is(await tokens.verify('join', made.join), (await tokens.identify(made.join)).id)
  assert.is(await tokens.verify('join', made.admin), undefined)
  await db.close()
})

eachEngine(test, 'an expired token is refused with 401 from its expiry on', async (open) => {
  const { db, tokens } = await store(open)
  const t0 = Date.now()
  const { token, info } = (await tokens.create({ role: 'publisher', name: 'short', ttlSeconds: 60 }, { by: 'test', now: t0 }))
  assert.is(info.expiresAt, t0 + 60_000)
  assert.is((await tokens.identify(token, t0 + 59_999)).id, info.id)
  await rejects(async () => await tokens.identify(token, t0 + 60_000), (e: unknown) => e instanceof UnauthorizedError && /expired/.test(e.message))
  await rejects(async () => await tokens.authorize(`Bearer ${token}`, ['publisher'], t0 + 61_000), is(UnauthorizedError))
  for (const ttlSeconds of [0, -1, 1.5, 200 * 365 * 86400]) {
    await rejects(async () => await tokens.create({ role: 'reader', name: 'x', ttlSeconds }), is(BadInputError))
  }
  await db.close()
})

eachEngine(test, 'a revoked token is refused with 401 on its next use; revoking again changes nothing', async (open) => {
  const { db, tokens } = await store(open)
  await tokens.create({ role: 'admin', name: 'root' })
  const { token, info } = (await tokens.create({ role: 'publisher', name: 'alice' }))
  assert.is((await tokens.identify(token)).id, info.id)
  const revoked = await tokens.revoke(info.id, { by: 'test', now: 1000 })
  assert.is(revoked.revokedAt, 1000)
  await rejects(async () => await tokens.identify(token), (e: unknown) => e instanceof UnauthorizedError && /revoked/.test(e.message))
  assert.is((await tokens.revoke(info.id, { by: 'test', now: 2000 })).revokedAt, 1000)
  await rejects(async () => await tokens.revoke('000000000000'), is(NotFoundError))
  // Registering a revoked token again (it is still in a token file) does not bring it back.
  const again = new TokenStore(db, () => {})
  assert.ok((await again.register('publisher', token)).revokedAt != null)
  await rejects(async () => await again.identify(token), is(UnauthorizedError))
  await db.close()
})

eachEngine(test, 'the last admin token that works cannot be revoked; with a second one it can', async (open) => {
  const { db, tokens } = await store(open)
  const a = (await tokens.create({ role: 'admin', name: 'a' })).info
  await rejects(async () => await tokens.revoke(a.id), is(ConflictError))
  const b = (await tokens.create({ role: 'admin', name: 'b' })).info
  await tokens.revoke(a.id)
  await rejects(async () => await tokens.revoke(b.id), is(ConflictError))
  await db.close()
})

eachEngine(test, 'names and roles are checked', async (open) => {
  const { db, tokens } = await store(open)
  for (const name of ['', '   ', 'a\nb', 'x'.repeat(101)]) await rejects(async () => await tokens.create({ role: 'reader', name }), is(BadInputError), JSON.stringify(name))
  await rejects(async () => await tokens.create({ role: 'root' as never, name: 'x' }), is(BadInputError))
  await db.close()
})

test('a first-release tokens table is upgraded in place: its tokens keep working with their role, and own their contents', async () => {
  const dir = await tempDir()
  const path = join(dir, 'catalog.db')
  // The first release's schema and rows, as a pool of that version left them.
  const old = new DatabaseSync(path)
  old.exec(`CREATE TABLE tokens (hash BLOB PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('publisher', 'join')), label TEXT NOT NULL) STRICT;`)
  const insert = old.prepare('INSERT INTO tokens (hash, kind, label) VALUES (?, ?, ?)')
  const pubHash = hashToken('old-publisher-secret')
  insert.run(pubHash, 'publisher', `publisher-${pubHash.subarray(0, 4).toString('hex')}`)
  insert.run(hashToken('old-join-secret'), 'join', 'join-node')
  old.close()

  const db = new Db(path)
  const tokens = new TokenStore(db, () => {})
  const pub = await tokens.identify('old-publisher-secret')
  assert.is(pub.role, 'publisher')
  assert.match(pub.id, /^[0-9a-f]{12}$/)
  assert.is((await tokens.identify('old-join-secret')).role, 'join')
  assert.is(await tokens.verify('join', 'old-join-secret'), (await tokens.identify('old-join-secret')).id)
  assert.is((await tokens.list()).length, 2)
  assert.ok((await tokens.list()).every(t => t.revokedAt == null && t.expiresAt == null))
  await db.close()

  // A second open finds the new table and leaves it alone.
  const db2 = new Db(path)
  const again = new TokenStore(db2, () => {})
  assert.is((await again.identify('old-publisher-secret')).id, pub.id)
  await db2.close()
})

test('upgrading a first-release table gives its publisher the contents it published', async () => {
  const dir = await tempDir()
  const path = join(dir, 'catalog.db')
  const pubHash = hashToken('old-publisher-secret')
  const label = `publisher-${pubHash.subarray(0, 4).toString('hex')}`
  {
    const db = new Db(path)
    const catalog = new Catalog(db)
    await catalog.createUpload({ uploadId: 'upload-1', name: 'a', type: 'x/y', chunkSize: 1024, replicas: 1, createdAt: new Date().toISOString(), publisher: label })
    await catalog.createUpload({ uploadId: 'upload-2', name: 'b', type: 'x/y', chunkSize: 1024, replicas: 1, createdAt: new Date().toISOString(), publisher: 'publisher-ffffffff' })
    // Back to a catalog from before versioning, with the first release's tokens table.
    await db.exec('DROP TABLE tokens; DROP TABLE schema_version')
    await db.exec('DROP TABLE pool_meta; DROP TABLE counters; DROP TABLE managers; DROP TABLE leases; ALTER TABLE contents DROP COLUMN manager; ALTER TABLE nodes DROP COLUMN demand')
    await db.exec('DROP TABLE upload_sessions; DROP TABLE lineage_chunks; DROP TABLE generations; DROP TABLE names')
    await db.exec('CREATE TABLE tokens (hash BLOB PRIMARY KEY, kind TEXT NOT NULL, label TEXT NOT NULL) STRICT')
    await db.prepare('INSERT INTO tokens (hash, kind, label) VALUES (?, ?, ?)').run(pubHash, 'publisher', label)
    await db.close()
  }
  const db = new Db(path)
  const catalog = new Catalog(db)
  const tokens = new TokenStore(db, () => {})
  const id = (await tokens.identify('old-publisher-secret')).id
  assert.is((await catalog.getContent('upload-1'))!.owner, id)
  assert.is((await catalog.getContent('upload-2'))!.owner, null, 'a content of an unknown publisher stays without owner (admins only)')
  await db.close()
})

eachEngine(test, 'the first start writes an admin token file (0600) and says where, never what; later starts do not', async (open) => {
  const dir = await tempDir()
  const db = await open()
  const tokens = new TokenStore(db, () => {})
  const lines: string[] = []
  const logger = silentLogger()
  logger.info = ((obj: unknown, msg?: string) => { lines.push(JSON.stringify(obj) + String(msg)) }) as never
  const path = join(dir, 'admin.token')
  await ensureAdminToken({ tokens, catalog: db, logger }, path)
  const token = (await readFile(path, 'utf8')).trim()
  assert.is((await stat(path)).mode & 0o777, 0o600)
  assert.is((await tokens.identify(token)).role, 'admin')
  assert.ok(lines.some(l => l.includes(path)), 'the log names the file')
  assert.not.ok(lines.some(l => l.includes(token)), 'the log never holds the token')

  await rm(path)
  await ensureAdminToken({ tokens, catalog: db, logger }, path)
  assert.not.ok(await stat(path).catch(() => undefined), 'a pool that has an admin token gets no new one')
  await db.close()
})

test.run()
