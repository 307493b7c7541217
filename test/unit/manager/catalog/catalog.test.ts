import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { newContentKey } from '../../../../core/chunk-crypto.ts'
import { UnauthorizedError } from '../../../../core/errors.ts'
import { chunkCid, manifestCid } from '../../../../core/ids.ts'
import { Catalog, type EventKind } from '../../../../manager/catalog/catalog.ts'
import { Db } from '../../../../manager/catalog/sqlite.ts'
import { KeyCustody } from '../../../../manager/catalog/key-custody.ts'
import { KeySealer, MasterKeyError, SEALED_KEY_BYTES } from '../../../../manager/catalog/key-sealing.ts'
import { parseBearer, TokenStore } from '../../../../manager/catalog/tokens.ts'
import { eachEngine } from '../../../support/catalog-engines.ts'
import { rejects } from '../../../support/rejects.ts'

const dirs: string[] = []
async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cdn-catalog-'))
  dirs.push(d)
  return d
}

test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

const node = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()

async function upload (catalog: Catalog, uploadId: string): Promise<void> {
  await catalog.createUpload({ uploadId, name: 'movie.mp4', type: 'video/mp4', chunkSize: 1024, replicas: 1, createdAt: new Date().toISOString(), publisher: 'p' })
}

async function joinNode (catalog: Catalog): Promise<void> {
  await catalog.joinNode({ peerId: node, http: 'http://127.0.0.1:1', zone: null, capacity: 1e9, egressCap: null, addrs: [] }, Date.now())
}

test('tokens are stored as hashes only, and the database file never holds them in plain text', async () => {
  const dir = await tempDir()
  const path = join(dir, 'catalog.db')
  const db = new Db(path)
  const tokens = new TokenStore(db, () => {})
  const secret = 'publisher-secret-7f3a9c'
  const joinSecret = 'join-secret-55d1e0'
  await tokens.register('publisher', secret)
  await tokens.register('join', joinSecret)
  await db.close()

  const raw = new DatabaseSync(path)
  const rows = raw.prepare('SELECT * FROM tokens').all() as Array<Record<string, unknown>>
  raw.close()
  assert.is(rows.length, 2)
  for (const row of rows) {
    for (const v of Object.values(row)) {
      const text = v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : String(v)
      assert.not.ok(text.includes(secret) || text.includes(joinSecret), 'a column holds a token in plain text')
    }
  }
  const file = (await readFile(path)).toString('latin1')
  assert.not.ok(file.includes(secret) || file.includes(joinSecret), 'the database file holds a token in plain text')
})

eachEngine(test, 'a wrong token, a token of the other kind or a malformed header is refused', async (open) => {
  const db = await open()
  const tokens = new TokenStore(db, () => {})
  const label = (await tokens.register('publisher', 'right-token')).id
  await tokens.register('join', 'join-token')
  assert.is(await tokens.verify('publisher', 'right-token'), label)
  assert.is(await tokens.authenticateBearer('publisher', 'Bearer right-token'), label)
  assert.is(await tokens.verify('publisher', 'wrong-token'), undefined)
  assert.is(await tokens.verify('publisher', 'right-token '), undefined)
  assert.is(await tokens.verify('publisher', 'join-token'), undefined)
  assert.is(await tokens.verify('join', 'right-token'), undefined)
  assert.is(await tokens.verify('publisher', ''), undefined)
  const unauthorized = (e: unknown): boolean => e instanceof UnauthorizedError
  await rejects(async () => await tokens.authenticateBearer('publisher', 'Bearer wrong-token'), unauthorized)
  await rejects(async () => await tokens.authenticateBearer('publisher', undefined), unauthorized)
  await rejects(async () => await tokens.authenticateBearer('publisher', 'Basic right-token'), unauthorized)
  await rejects(async () => await tokens.authenticateBearer('publisher', 'right-token'), unauthorized)
  assert.is(parseBearer('bearer  abc '), 'abc')
  await db.close()
})

eachEngine(test, 'registering a token twice keeps one row and its label', async (open) => {
  const db = await open()
  const tokens = new TokenStore(db, () => {})
  const a = await tokens.register('publisher', 'same')
  const b = await tokens.register('publisher', 'same')
  assert.equal(a, b)
  assert.is(await tokens.verify('publisher', 'same'), a.id)
  assert.is((await tokens.list()).length, 1)
  await db.close()
})

eachEngine(test, 'an upload stays unlisted until it is made visible under its content id, rows and all', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  await joinNode(catalog)
  await upload(catalog, 'upload-1')
  const c0 = chunkCid(Buffer.from('chunk 0')).toString()
  await catalog.addChunk('upload-1', 0, c0, 7)
  await catalog.addCopy('upload-1', c0, node)
  assert.equal(await catalog.listVisible(), [])
  assert.equal(await catalog.pendingUploads(), ['upload-1'])
  assert.is(await catalog.getVisible('upload-1'), undefined)

  await catalog.confirmCopy(c0, node)
  const contentId = manifestCid(Buffer.from('{"manifest":1}')).toString()
  await catalog.makeVisible('upload-1', { contentId, size: 7, chunkCount: 1, manifest: Buffer.from('{"manifest":1}') })
  assert.equal(await catalog.pendingUploads(), [])
  const [listed] = (await catalog.listVisible())
  assert.is(listed.id, contentId)
  assert.equal(listed.copies, { min: 1, max: 1, nodes: [node] })
  assert.ok(await catalog.hasChunk(contentId, c0))
  assert.equal((await catalog.copiesOf(contentId)).map(c => c.cid), [c0])
  assert.equal((await catalog.holdersOf(contentId)).map(n => n.peerId), [node])

  // A dead holder no longer counts as a copy.
  await catalog.setNodeState(node, 'dead')
  assert.is((await catalog.listVisible())[0].copies.min, 0)
  assert.equal(await catalog.holdersOf(contentId), [])

  assert.ok(await catalog.dropContent(contentId))
  assert.equal(await catalog.copiesOf(contentId), [])
  assert.not.ok(await catalog.hasChunk(contentId, c0))
  await db.close()
})

eachEngine(test, 'a reported copy turns suspect and stops counting', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  await joinNode(catalog)
  await upload(catalog, 'u')
  const c0 = chunkCid(Buffer.from('x')).toString()
  await catalog.addChunk('u', 0, c0, 1)
  await catalog.addCopy('u', c0, node, 'confirmed')
  await catalog.makeVisible('u', { contentId: manifestCid(Buffer.from('m')).toString(), size: 1, chunkCount: 1, manifest: Buffer.from('m') })
  assert.ok(await catalog.markSuspect(c0, node))
  assert.not.ok(await catalog.markSuspect(c0, node), 'only a confirmed copy turns suspect')
  assert.is((await catalog.listVisible())[0].copies.min, 0)
  await db.close()
})

eachEngine(test, 'keys are released only for visible contents and are gone once destroyed', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  const keys = new KeyCustody(db, new KeySealer(randomBytes(32)))
  const contentId = manifestCid(Buffer.from('m2')).toString()
  const key = newContentKey()
  await upload(catalog, 'u2')
  await keys.put(contentId, key)
  assert.is(await keys.release(contentId), undefined, 'no key while the content is not visible')
  await catalog.makeVisible('u2', { contentId, size: 0, chunkCount: 0, manifest: Buffer.from('m2') })
  assert.equal(Buffer.from((await keys.release(contentId)) ?? []), Buffer.from(key))
  await catalog.dropContent(contentId)
  assert.is(await keys.release(contentId), undefined, 'no key once the content is deleted')
  assert.ok(await keys.destroy(contentId))
  await db.close()
  const raw = await open()
  assert.is((await raw.prepare('SELECT COUNT(*) AS n FROM content_keys').get() as { n: number }).n, 0)
  await raw.close()
})

eachEngine(test, 'keys are stored sealed: the database alone opens no content, a wrong master key refuses to start, and old keys in clear are sealed', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  const master = randomBytes(32)
  const keys = new KeyCustody(db, new KeySealer(master))
  const contentId = manifestCid(Buffer.from('m3')).toString()
  const key = newContentKey()
  await upload(catalog, 'u3')
  await keys.put(contentId, key)
  await catalog.makeVisible('u3', { contentId, size: 0, chunkCount: 0, manifest: Buffer.from('m3') })
  const stored = (await db.prepare('SELECT key FROM content_keys WHERE content = ?').get(contentId) as { key: Uint8Array }).key
  assert.is(stored.length, SEALED_KEY_BYTES)
  assert.not.ok(Buffer.from(stored).includes(Buffer.from(key)), 'the key is not in the row')
  assert.equal(Buffer.from((await keys.release(contentId))!), Buffer.from(key))

  // A sealed key copied to another content's row does not open there.
  const other = manifestCid(Buffer.from('m4')).toString()
  await upload(catalog, 'u4b')
  await catalog.makeVisible('u4b', { contentId: other, size: 0, chunkCount: 0, manifest: Buffer.from('m4') })
  await db.prepare('INSERT INTO content_keys (content, key, stored_at) VALUES (?, ?, ?)').run(other, stored, 'x')
  await rejects(async () => await keys.release(other), e => e instanceof MasterKeyError)

  // Another master key: refused at start, before anything is served.
  await rejects(async () => await new KeyCustody(db, new KeySealer(randomBytes(32))).prepare(), e => e instanceof MasterKeyError && /master key/.test(e.message))

  // A key a manager from before sealing stored in clear is sealed at start and still opens.
  await db.prepare('DELETE FROM content_keys WHERE content = ?').run(other)
  await db.prepare('INSERT INTO content_keys (content, key, stored_at) VALUES (?, ?, ?)').run(other, key, 'x')
  assert.is(await keys.prepare(), 1)
  const resealed = (await db.prepare('SELECT key FROM content_keys WHERE content = ?').get(other) as { key: Uint8Array }).key
  assert.is(resealed.length, SEALED_KEY_BYTES)
  assert.equal(Buffer.from((await keys.release(other))!), Buffer.from(key))
  assert.is(await keys.prepare(), 0, 'nothing left in clear')
  await db.close()
})

eachEngine(test, 'a heartbeat\'s held list: contents to drop, and owed deletes it no longer holds are cleared', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  await joinNode(catalog)
  await upload(catalog, 'u4')
  const kept = manifestCid(Buffer.from('kept')).toString()
  await catalog.makeVisible('u4', { contentId: kept, size: 0, chunkCount: 0, manifest: Buffer.from('kept') })
  const gone = manifestCid(Buffer.from('gone')).toString()
  assert.equal(await catalog.contentsToDrop([kept, gone, gone], Date.now()), [gone])
  assert.equal(await catalog.contentsToDrop([], Date.now()), [])
  await catalog.addPendingDelete(gone, node, [gone])
  await catalog.addPendingDelete(kept, node, [kept])
  assert.is(await catalog.clearPendingDeletesNotHeld(node, [gone]), 1)
  assert.equal((await catalog.pendingDeletes()).map(p => p.content), [gone])
  await db.close()
})

eachEngine(test, 'events come back newest first with their detail', async (open) => {
  const db = await open()
  const kinds: string[] = []
  const catalog = new Catalog(db, { onEvent: k => kinds.push(k) })
  await catalog.recordEvent({ kind: 'a' as EventKind, detail: { n: 1 } })
  await catalog.recordEvent({ kind: 'b' as EventKind, node })
  const events = await catalog.listEvents(10)
  assert.equal(events.map(e => e.kind), ['b', 'a'])
  assert.equal(events[1].detail, { n: 1 })
  assert.is(events[0].node, node)
  assert.equal((await catalog.listEvents(1)).map(e => e.kind), ['b'])
  assert.equal(kinds, ['a', 'b'])
  await db.close()
})

eachEngine(test, 'a transaction that throws leaves nothing behind', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  await rejects(async () => await db.transaction(async () => {
    await upload(catalog, 'u3')
    await catalog.recordEvent({ kind: 'x' as EventKind })
    throw new Error('boom')
  }))
  assert.equal(await catalog.pendingUploads(), [])
  assert.equal(await catalog.listEvents(10), [])
  await db.close()
})

test.run()
