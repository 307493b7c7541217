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

async function store (): Promise<{ db: Db, tokens: TokenStore }> {
  const db = new Db(join(await tempDir(), 'catalog.db'))
  const catalog = new Catalog(db)
  return { db, tokens: new TokenStore(db, e => { catalog.recordEvent(e) }) }
}

test('a created token has a public id, its role and name, and is shown in clear only once', async () => {
  const { db, tokens } = await store()
  const { token, info } = tokens.create({ role: 'reader', name: 'dashboard' })
  assert.match(info.id, /^[0-9a-f]{12}$/)
  assert.equal({ role: info.role, name: info.name, expiresAt: info.expiresAt, revokedAt: info.revokedAt }, { role: 'reader', name: 'dashboard', expiresAt: null, revokedAt: null })
  assert.ok(token.length >= 32 && token.startsWith('cdn_'))
  assert.equal(tokens.identify(token), { id: info.id, role: 'reader', name: 'dashboard' })
  const listed = tokens.list()
  assert.is(listed.length, 1)
  assert.not.ok(JSON.stringify(listed).includes(token), 'listing never shows the token')
  db.close()
})

test('roles: authorize lets the listed roles through, 403 for other roles, 401 for none or a wrong one', async () => {
  const { db, tokens } = await store()
  const made = Object.fromEntries((['admin', 'publisher', 'reader', 'join'] as const).map(r => [r, tokens.create({ role: r, name: r }).token]))
  const bearer = (t: string): string => `Bearer ${t}`
  assert.is(tokens.authorize(bearer(made.admin), ['admin']).role, 'admin')
  assert.is(tokens.authorize(bearer(made.publisher), ['admin', 'publisher']).role, 'publisher')
  assert.throws(() => tokens.authorize(bearer(made.publisher), ['admin']), is(ForbiddenError))
  assert.throws(() => tokens.authorize(bearer(made.reader), ['admin', 'publisher']), is(ForbiddenError))
  assert.throws(() => tokens.authorize(bearer(made.join), ['admin', 'publisher', 'reader']), is(ForbiddenError))
  assert.throws(() => tokens.authorize(undefined, ['admin']), is(UnauthorizedError))
  assert.throws(() => tokens.authorize(bearer('cdn_not-a-token'), ['admin']), is(UnauthorizedError))
  assert.throws(() => tokens.authorize(`Basic ${made.admin}`, ['admin']), is(UnauthorizedError))
  // The control protocol's join takes join tokens only.
  assert.is(tokens.verify('join', made.join), tokens.identify(made.join).id)
  assert.is(tokens.verify('join', made.admin), undefined)
  db.close()
})

test('an expired token is refused with 401 from its expiry on', async () => {
  const { db, tokens } = await store()
  const t0 = Date.now()
  const { token, info } = tokens.create({ role: 'publisher', name: 'short', ttlSeconds: 60 }, { by: 'test', now: t0 })
  assert.is(info.expiresAt, t0 + 60_000)
  assert.is(tokens.identify(token, t0 + 59_999).id, info.id)
  assert.throws(() => tokens.identify(token, t0 + 60_000), (e: unknown) => e instanceof UnauthorizedError && /expired/.test(e.message))
  assert.throws(() => tokens.authorize(`Bearer ${token}`, ['publisher'], t0 + 61_000), is(UnauthorizedError))
  for (const ttlSeconds of [0, -1, 1.5, 200 * 365 * 86400]) {
    assert.throws(() => tokens.create({ role: 'reader', name: 'x', ttlSeconds }), is(BadInputError))
  }
  db.close()
})

test('a revoked token is refused with 401 on its next use; revoking again changes nothing', async () => {
  const { db, tokens } = await store()
  tokens.create({ role: 'admin', name: 'root' })
  const { token, info } = tokens.create({ role: 'publisher', name: 'alice' })
  assert.is(tokens.identify(token).id, info.id)
  const revoked = tokens.revoke(info.id, { by: 'test', now: 1000 })
  assert.is(revoked.revokedAt, 1000)
  assert.throws(() => tokens.identify(token), (e: unknown) => e instanceof UnauthorizedError && /revoked/.test(e.message))
  assert.is(tokens.revoke(info.id, { by: 'test', now: 2000 }).revokedAt, 1000)
  assert.throws(() => tokens.revoke('000000000000'), is(NotFoundError))
  // Registering a revoked token again (it is still in a token file) does not bring it back.
  const again = new TokenStore(db, () => {})
  assert.ok(again.register('publisher', token).revokedAt != null)
  assert.throws(() => again.identify(token), is(UnauthorizedError))
  db.close()
})

test('the last admin token that works cannot be revoked; with a second one it can', async () => {
  const { db, tokens } = await store()
  const a = tokens.create({ role: 'admin', name: 'a' }).info
  assert.throws(() => tokens.revoke(a.id), is(ConflictError))
  const b = tokens.create({ role: 'admin', name: 'b' }).info
  tokens.revoke(a.id)
  assert.throws(() => tokens.revoke(b.id), is(ConflictError))
  db.close()
})

test('names and roles are checked', async () => {
  const { db, tokens } = await store()
  for (const name of ['', '   ', 'a\nb', 'x'.repeat(101)]) assert.throws(() => tokens.create({ role: 'reader', name }), is(BadInputError), JSON.stringify(name))
  assert.throws(() => tokens.create({ role: 'root' as never, name: 'x' }), is(BadInputError))
  db.close()
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
  const pub = tokens.identify('old-publisher-secret')
  assert.is(pub.role, 'publisher')
  assert.match(pub.id, /^[0-9a-f]{12}$/)
  assert.is(tokens.identify('old-join-secret').role, 'join')
  assert.is(tokens.verify('join', 'old-join-secret'), tokens.identify('old-join-secret').id)
  assert.is(tokens.list().length, 2)
  assert.ok(tokens.list().every(t => t.revokedAt == null && t.expiresAt == null))
  db.close()

  // A second open finds the new table and leaves it alone.
  const db2 = new Db(path)
  const again = new TokenStore(db2, () => {})
  assert.is(again.identify('old-publisher-secret').id, pub.id)
  db2.close()
})

test('upgrading a first-release table gives its publisher the contents it published', async () => {
  const dir = await tempDir()
  const path = join(dir, 'catalog.db')
  const pubHash = hashToken('old-publisher-secret')
  const label = `publisher-${pubHash.subarray(0, 4).toString('hex')}`
  {
    const db = new Db(path)
    const catalog = new Catalog(db)
    catalog.createUpload({ uploadId: 'upload-1', name: 'a', type: 'x/y', chunkSize: 1024, replicas: 1, createdAt: new Date().toISOString(), publisher: label })
    catalog.createUpload({ uploadId: 'upload-2', name: 'b', type: 'x/y', chunkSize: 1024, replicas: 1, createdAt: new Date().toISOString(), publisher: 'publisher-ffffffff' })
    db.exec('CREATE TABLE tokens (hash BLOB PRIMARY KEY, kind TEXT NOT NULL, label TEXT NOT NULL) STRICT')
    db.prepare('INSERT INTO tokens (hash, kind, label) VALUES (?, ?, ?)').run(pubHash, 'publisher', label)
    db.close()
  }
  const db = new Db(path)
  const catalog = new Catalog(db)
  const tokens = new TokenStore(db, () => {})
  const id = tokens.identify('old-publisher-secret').id
  assert.is(catalog.getContent('upload-1')!.owner, id)
  assert.is(catalog.getContent('upload-2')!.owner, null, 'a content of an unknown publisher stays without owner (admins only)')
  db.close()
})

test('the first start writes an admin token file (0600) and says where, never what; later starts do not', async () => {
  const dir = await tempDir()
  const db = new Db(join(dir, 'catalog.db'))
  const tokens = new TokenStore(db, () => {})
  const lines: string[] = []
  const logger = silentLogger()
  logger.info = ((obj: unknown, msg?: string) => { lines.push(JSON.stringify(obj) + String(msg)) }) as never
  const path = join(dir, 'admin.token')
  await ensureAdminToken({ tokens, catalog: db, logger }, path)
  const token = (await readFile(path, 'utf8')).trim()
  assert.is((await stat(path)).mode & 0o777, 0o600)
  assert.is(tokens.identify(token).role, 'admin')
  assert.ok(lines.some(l => l.includes(path)), 'the log names the file')
  assert.not.ok(lines.some(l => l.includes(token)), 'the log never holds the token')

  await rm(path)
  await ensureAdminToken({ tokens, catalog: db, logger }, path)
  assert.not.ok(await stat(path).catch(() => undefined), 'a pool that has an admin token gets no new one')
  db.close()
})

test.run()
