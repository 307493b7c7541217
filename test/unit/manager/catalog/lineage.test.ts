/**
 * Lineages and upload sessions in the catalog (lineage.ts, upload-sessions.ts)
 * on both engines: the first publisher claims a name and its key, racing
 * claims agree on both, a sealed lineage key opens only for its own name and
 * master key, the tag index finds what was recorded, and a session survives
 * the restart cleanup that discards ordinary unfinished uploads, until it idles.
 */
import { randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { ForbiddenError } from '../../../../core/errors.ts'
import { Catalog } from '../../../../manager/catalog/catalog.ts'
import { KeySealer, MasterKeyError } from '../../../../manager/catalog/key-sealing.ts'
import { LineageStore } from '../../../../manager/catalog/lineage.ts'
import { UploadSessionStore, type UploadPlan } from '../../../../manager/catalog/upload-sessions.ts'
import { eachEngine } from '../../../support/catalog-engines.ts'
import { rejects } from '../../../support/rejects.ts'

const owner = (id: string) => (o: string): boolean => o === id
const master = randomBytes(32)

eachEngine(test, 'the first claim owns the name and makes its key; racing claims agree; another publisher is refused', async (open) => {
  const db = await open()
  const lineage = new LineageStore(db, new KeySealer(master))
  const keys = await Promise.all(['alice', 'bob', 'carol'].map(async who => await lineage.claim('films/a.mp4', who, () => true, 1000)))
  assert.ok(keys.every(k => Buffer.from(k).equals(Buffer.from(keys[0]))), 'every racer got the same key')
  const again = await lineage.claim('films/b.mp4', 'alice', owner('alice'), 1000)
  assert.ok(Buffer.from(await lineage.claim('films/b.mp4', 'alice', owner('alice'), 2000)).equals(Buffer.from(again)))
  await rejects(async () => await lineage.claim('films/b.mp4', 'bob', owner('bob'), 3000), (e: unknown) => e instanceof ForbiddenError)
  assert.not.ok(Buffer.from(again).equals(Buffer.from(keys[0])), 'two names, two keys')
})

eachEngine(test, 'a sealed lineage key opens only for its own name and with the master key', async (open) => {
  const db = await open()
  await new LineageStore(db, new KeySealer(master)).claim('a', 'alice', () => true, 1)
  await new LineageStore(db, new KeySealer(master)).claim('b', 'alice', () => true, 1)
  await rejects(async () => await new LineageStore(db, new KeySealer(randomBytes(32))).key('a'), (e: unknown) => e instanceof MasterKeyError)
  // A sealed key moved to another name's row does not open there.
  await db.prepare('UPDATE names SET lineage_key = (SELECT lineage_key FROM names WHERE name = ?) WHERE name = ?').run('a', 'b')
  await rejects(async () => await new LineageStore(db, new KeySealer(master)).key('b'), (e: unknown) => e instanceof MasterKeyError)
})

eachEngine(test, 'the tag index finds recorded chunks, per name, in batches', async (open) => {
  const lineage = new LineageStore(await open(), new KeySealer(master))
  await lineage.claim('n', 'alice', () => true, 1)
  await lineage.claim('m', 'alice', () => true, 1)
  const tags = Array.from({ length: 1200 }, (_, i) => i.toString(16).padStart(64, '0'))
  for (const [i, tag] of tags.entries()) if (i % 2 === 0) await lineage.record('n', { tag, cid: `cid-${i}`, size: i + 1 })
  const found = await lineage.lookup('n', tags)
  assert.is(found.size, 600)
  assert.equal(found.get(tags[1000]), { tag: tags[1000], cid: 'cid-1000', size: 1001 })
  assert.is(found.get(tags[1001]), undefined)
  assert.is((await lineage.lookup('m', tags)).size, 0, 'another name shares nothing')
})

eachEngine(test, 'a session is not an abandoned upload: restart cleanup keeps it, idleness ends it', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  const sessions = new UploadSessionStore(db)
  await new LineageStore(db, new KeySealer(master)).claim('n', 'alice', () => true, 1)
  const plan: UploadPlan = { tags: ['a'.repeat(64)], sizes: [10], file: 'f', type: 'text/plain', replicas: 2, private: false }
  for (const id of ['upload-plain', 'upload-session']) {
    await catalog.createUpload({ uploadId: id, name: id, type: 'text/plain', chunkSize: 1024, replicas: 2, createdAt: new Date().toISOString(), publisher: 'alice', manager: 'm1' })
  }
  await sessions.create('upload-session', 'n', 'alice', plan, 1000)
  assert.equal(await catalog.pendingUploads('m1'), ['upload-plain'])
  assert.equal(await catalog.pendingUploads(), ['upload-plain'])
  assert.equal((await sessions.find('n', 'alice'))?.upload, 'upload-session')
  assert.is(await sessions.find('n', 'bob'), undefined)
  await sessions.addStored('upload-session', 10, 5000)
  assert.equal(await sessions.expired(4000), [])
  assert.equal(await sessions.expired(6000), ['upload-session'])
  // Discarding the upload row takes the session with it.
  await catalog.dropFailedUpload('upload-session', { code: 'ERR_ABANDONED' })
  assert.is(await sessions.get('upload-session'), undefined)
})

test.run()
