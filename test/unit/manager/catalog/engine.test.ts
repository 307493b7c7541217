/**
 * What every engine guarantees the stores (manager/catalog/engine.ts): a
 * transaction is one async flow's alone, a statement from another flow never
 * lands in it, nested transactions join the outer one; and the schema is
 * versioned, upgraded in place and refused when newer than this code.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { DatabaseSync } from 'node:sqlite'
import { Catalog, type EventKind } from '../../../../manager/catalog/catalog.ts'
import { SchemaTooNewError } from '../../../../manager/catalog/errors.ts'
import { SCHEMA_VERSION, schemaVersion } from '../../../../manager/catalog/migrations.ts'
import { openEngine } from '../../../../manager/catalog/open.ts'
import { eachEngine, freshLocation } from '../../../support/catalog-engines.ts'
import { rejects } from '../../../support/rejects.ts'

/** Lets every other flow run a while: the transaction stays open across it. */
const yieldAwhile = async (): Promise<void> => { await new Promise(resolve => setTimeout(resolve, 30)) }

eachEngine(test, 'a statement of another flow never lands in an open transaction, and does not wait for its outcome to count', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  let inside!: () => void
  const opened = new Promise<void>(resolve => { inside = resolve })
  const failing = db.transaction(async () => {
    await catalog.recordEvent({ kind: 'in-tx' as EventKind })
    inside()
    await yieldAwhile()
    throw new Error('rolled back')
  })
  await opened
  // Another flow, outside any transaction, while the first one is open.
  await catalog.recordEvent({ kind: 'outside' as EventKind })
  await rejects(async () => await failing, /rolled back/)
  assert.equal((await catalog.listEvents(10)).map(e => e.kind), ['outside'])
  await db.close()
})

eachEngine(test, 'transactions of two flows do not see each other half-done: read-then-write stays consistent', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  const bump = async (): Promise<void> => {
    await db.transaction(async () => {
      const n = (await catalog.listEvents(100)).length
      await yieldAwhile()
      await catalog.recordEvent({ kind: 'count' as EventKind, detail: { seen: n } })
    })
  }
  await Promise.all([bump(), bump(), bump()])
  const seen = (await catalog.listEvents(100)).map(e => e.detail?.seen as number).sort()
  assert.equal(seen, [0, 1, 2], 'each transaction saw the ones before it, and only whole')
  await db.close()
})

eachEngine(test, 'a nested transaction joins the outer one: all of it rolls back together', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  await rejects(async () => await db.transaction(async () => {
    await db.transaction(async () => { await catalog.recordEvent({ kind: 'inner' as EventKind }) })
    await catalog.recordEvent({ kind: 'outer' as EventKind })
    throw new Error('boom')
  }), /boom/)
  assert.equal(await catalog.listEvents(10), [])
  await db.close()
})

eachEngine(test, 'a new catalog is at the newest schema; one stamped newer than this code is refused with a clear error', async (open) => {
  const db = await open()
  assert.is(await schemaVersion(db), SCHEMA_VERSION)
  await db.exec(`UPDATE schema_version SET version = ${SCHEMA_VERSION + 1}`)
  await db.close()
  await rejects(async () => await open(), (e: unknown) => e instanceof SchemaTooNewError && e.code === 'ERR_SCHEMA_TOO_NEW' &&
    e.message === `the catalog's schema is version ${SCHEMA_VERSION + 1}, newer than this manager knows (${SCHEMA_VERSION}): upgrade the manager`)
})

test('managers opening one new PostgreSQL database at once take turns: one creates the schema, the others find it', async () => {
  const where = await freshLocation('postgres')
  const dbs = await Promise.all([openEngine(where), openEngine(where), openEngine(where)])
  for (const db of dbs) assert.is(await schemaVersion(db), SCHEMA_VERSION)
  assert.equal(await dbs[0].prepare('SELECT count(*) AS n FROM schema_version').get(), { n: 1 })
  for (const db of dbs) await db.close()
})

test('a SQLite catalog from before versioning (first-release tables) is upgraded in place and keeps its rows', async () => {
  const where = await freshLocation('sqlite')
  if (!('sqlite' in where)) throw new Error('unreachable')
  const old = new DatabaseSync(where.sqlite)
  old.exec(`CREATE TABLE contents (id TEXT PRIMARY KEY, state TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
      size INTEGER NOT NULL DEFAULT 0, chunk_size INTEGER NOT NULL, chunk_count INTEGER NOT NULL DEFAULT 0, replicas INTEGER NOT NULL,
      created_at TEXT NOT NULL, publisher TEXT NOT NULL, manifest BLOB) STRICT;
    CREATE TABLE nodes (peer_id TEXT PRIMARY KEY, http TEXT NOT NULL, zone TEXT, capacity INTEGER NOT NULL, used INTEGER NOT NULL DEFAULT 0,
      egress_cap REAL, egress_rate REAL NOT NULL DEFAULT 0, blobs INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL, last_seen INTEGER NOT NULL,
      joined_at INTEGER NOT NULL, addrs TEXT NOT NULL DEFAULT '[]') STRICT;`)
  old.prepare(`INSERT INTO contents (id, state, name, type, size, chunk_size, chunk_count, replicas, created_at, publisher, manifest)
    VALUES ('c1', 'visible', 'old.mp4', 'video/mp4', 10, 1024, 1, 3, '2025-01-01T00:00:00.000Z', 'p', x'00')`).run()
  old.close()

  const db = await openEngine(where)
  assert.is(await schemaVersion(db), SCHEMA_VERSION)
  const catalog = new Catalog(db)
  const c = await catalog.getVisible('c1')
  assert.equal([c?.name, c?.private, c?.owner, c?.expiresAt], ['old.mp4', false, null, null])
  await db.close()
})

test.run()
