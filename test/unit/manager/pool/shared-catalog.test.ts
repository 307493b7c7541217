/**
 * What several managers share through one catalog, on both engines: the
 * controller lease, the manager roster, the pool identity, the signing
 * sequence, uploads bound to their manager, and demand.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { silentLogger } from '../../../../core/log.ts'
import { verifyRecord, type ManagerListBody } from '../../../../core/signed-record.ts'
import { Catalog } from '../../../../manager/catalog/catalog.ts'
import { LeaseStore } from '../../../../manager/catalog/leases.ts'
import { ManagerStore } from '../../../../manager/catalog/managers.ts'
import { PoolMeta } from '../../../../manager/catalog/pool-meta.ts'
import { openPoolIdentity } from '../../../../manager/pool/pool-identity.ts'
import { PoolPresence } from '../../../../manager/pool/pool-presence.ts'
import { DemandTracker } from '../../../../manager/replication/demand-tracker.ts'
import { SharedDemand } from '../../../../manager/replication/shared-demand.ts'
import { eachEngine } from '../../../support/catalog-engines.ts'
import { rejects } from '../../../support/rejects.ts'

const logger = silentLogger()
const dirs: string[] = []
async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cdn-pool-'))
  dirs.push(d)
  return d
}
test.after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }) })

const newKey = async () => await generateKeyPair('Ed25519')
const idOf = (k: Awaited<ReturnType<typeof newKey>>): string => peerIdFromPrivateKey(k).toString()

eachEngine(test, 'one holder of the lease at a time; it passes on only after it expires or is released', async (open) => {
  const a = new LeaseStore(await open())
  const b = new LeaseStore(await open())
  const first = await a.acquire('controller', 'manager-a', 60_000)
  assert.ok(first, 'a free lease is taken')
  assert.is(await b.acquire('controller', 'manager-b', 60_000), undefined, 'a held lease is refused to another manager')
  const renewed = await a.acquire('controller', 'manager-a', 60_000)
  assert.is(renewed?.epoch, first.epoch, 'a renewal keeps the term')
  assert.ok(await a.holds('controller', 'manager-a', first.epoch))
  await a.release('controller', 'manager-a', first.epoch)
  assert.not.ok(await a.holds('controller', 'manager-a', first.epoch), 'released: the fence fails')
  const taken = await b.acquire('controller', 'manager-b', 200)
  assert.ok(taken != null && taken.epoch > first.epoch, 'a new holder gets a greater epoch')
  assert.is(await a.acquire('controller', 'manager-a', 60_000), undefined)
  await sleep(400)
  const back = await a.acquire('controller', 'manager-a', 60_000)
  assert.ok(back != null && back.epoch > taken.epoch, 'an expired lease is taken over, in a new term')
  assert.not.ok(await b.holds('controller', 'manager-b', taken.epoch), 'the old holder\'s fence fails')
  assert.is((await b.holder('controller'))?.holder, 'manager-a')
})

eachEngine(test, 'managers racing for a free lease: exactly one wins', async (open) => {
  const stores = await Promise.all([0, 1, 2, 3].map(async () => new LeaseStore(await open())))
  const grants = await Promise.all(stores.map(async (s, i) => await s.acquire('controller', `manager-${i}`, 60_000)))
  assert.is(grants.filter(g => g != null).length, 1)
})

eachEngine(test, 'the roster lists managers seen lately, oldest first, and drops one that left', async (open) => {
  const roster = new ManagerStore(await open())
  await roster.touch({ peerId: 'm1', http: 'http://127.0.0.1:1', multiaddrs: ['/ip4/127.0.0.1/tcp/1/p2p/m1'] })
  await sleep(5)
  await roster.touch({ peerId: 'm2', http: 'http://127.0.0.1:2', multiaddrs: [] })
  assert.equal((await roster.live(60_000)).map(m => m.peerId), ['m1', 'm2'])
  assert.equal((await roster.live(60_000))[0].multiaddrs, ['/ip4/127.0.0.1/tcp/1/p2p/m1'])
  await sleep(1500)
  await roster.touch({ peerId: 'm2', http: 'http://127.0.0.1:2', multiaddrs: [] })
  assert.equal((await roster.live(1000)).map(m => m.peerId), ['m2'], 'a manager silent past the window is not live')
  await roster.leave('m2')
  assert.equal((await roster.live(60_000)).map(m => m.peerId), ['m1'])
})

eachEngine(test, 'a new pool makes its own key; a second manager needs that key; an older pool keeps its manager\'s key', async (open) => {
  const dir = await tempDir()
  const meta = new PoolMeta(await open())
  const managerKey = await newKey()
  const made = await openPoolIdentity({ file: join(dir, 'pool.key'), create: true, managerKey, meta })
  assert.is(made.origin, 'created')
  assert.is.not(made.peerId, idOf(managerKey))
  assert.is((await stat(join(dir, 'pool.key'))).mode & 0o777, 0o600)
  const again = await openPoolIdentity({ file: join(dir, 'pool.key'), create: true, managerKey, meta })
  assert.equal([again.origin, again.peerId], ['file', made.peerId])

  // A second manager with its own fresh data directory and no pool key is refused, and writes no stray key.
  const other = await tempDir()
  await rejects(async () => await openPoolIdentity({ file: join(other, 'pool.key'), create: true, managerKey: await newKey(), meta }), /belongs to the pool .*--pool-key-file/)
  await rejects(async () => await readFile(join(other, 'pool.key')), /ENOENT/)
  // Given the pool's key, it signs for the pool.
  const shared = await openPoolIdentity({ file: join(dir, 'pool.key'), create: false, managerKey: await newKey(), meta })
  assert.is(shared.peerId, made.peerId)
  await rejects(async () => await openPoolIdentity({ file: join(other, 'missing.key'), create: false, managerKey, meta }), /no pool key file/)
})

eachEngine(test, 'a pool published to before pool keys keeps signing with its manager\'s key', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  await catalog.createUpload({ uploadId: 'u1', name: 'a', type: 'x/y', chunkSize: 1024, replicas: 1, createdAt: new Date().toISOString(), publisher: 'p' })
  const managerKey = await newKey()
  const adopted = await openPoolIdentity({ file: join(await tempDir(), 'pool.key'), create: true, managerKey, meta: new PoolMeta(db) })
  assert.equal([adopted.origin, adopted.peerId], ['adopted', idOf(managerKey)])
})

eachEngine(test, 'manager lists are signed by the pool, list the live managers and grow in sequence across managers', async (open) => {
  const poolKey = await newKey()
  const pool = { privateKey: poolKey, peerId: idOf(poolKey) }
  const presence = async (peerId: string, port: number): Promise<PoolPresence> => {
    const db = await open()
    return new PoolPresence({ managers: new ManagerStore(db), meta: new PoolMeta(db), pool, self: () => ({ peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${port}/p2p/${peerId}`], http: `http://127.0.0.1:${port}` }) }, { liveMs: 60_000 })
  }
  const a = await presence('ma', 1)
  const b = await presence('mb', 2)
  await a.refresh()
  const first = await a.news()
  await b.refresh()
  await a.refresh()
  const second = await b.news()
  const check = async (encoded: string | undefined): Promise<ManagerListBody> => (await verifyRecord<ManagerListBody>(encoded, { kind: 'manager-list', trusted: [pool.peerId] })).body
  const one = await check(first.managers)
  const two = await check(second.managers)
  assert.is(first.pool, pool.peerId)
  assert.equal(one.managers.map(m => m.peerId), ['ma'])
  assert.equal(two.managers.map(m => m.peerId), ['ma', 'mb'])
  assert.ok(two.seq > one.seq, 'a list signed later by another manager has a greater sequence')
  assert.equal(a.urls(), ['http://127.0.0.1:1', 'http://127.0.0.1:2'])
  assert.is((await a.news()).managers, (await a.news()).managers, 'an unchanged list is not signed again')
})

eachEngine(test, 'uploads are bound to their manager: a restart cleans its own, the controller those of a dead manager', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  const roster = new ManagerStore(db)
  const upload = async (id: string, manager: string | null): Promise<void> => {
    await catalog.createUpload({ uploadId: id, name: id, type: 'x/y', chunkSize: 1024, replicas: 1, createdAt: new Date().toISOString(), publisher: 'p', manager })
  }
  await upload('old', null)
  await upload('of-a', 'ma')
  await upload('of-b', 'mb')
  await roster.touch({ peerId: 'ma', http: 'http://a', multiaddrs: [] })
  await roster.touch({ peerId: 'mb', http: 'http://b', multiaddrs: [] })
  assert.equal((await catalog.pendingUploads('ma')).sort(), ['of-a', 'old'])
  assert.equal(await catalog.orphanedUploads('ma', 60_000), [], 'a live manager\'s upload is its own')
  await sleep(1500)
  await roster.touch({ peerId: 'ma', http: 'http://a', multiaddrs: [] })
  assert.equal(await catalog.orphanedUploads('ma', 1000), ['of-b'], 'a manager silent past the deadline left its upload behind')
})

eachEngine(test, 'demand a node reported to one manager reaches the controller on another', async (open) => {
  const db = await open()
  const catalog = new Catalog(db)
  const node = idOf(await newKey())
  await catalog.joinNode({ peerId: node, http: 'http://127.0.0.1:1', zone: null, capacity: 1e9, egressCap: null, addrs: [] }, Date.now())
  const content = 'bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'
  const taker = new SharedDemand({ catalog, tracker: new DemandTracker({ smoothing: 0.5 }), logger })
  const otherTaker = new SharedDemand({ catalog: new Catalog(await open()), tracker: new DemandTracker({ smoothing: 0.5 }), logger })
  const now = Date.now()
  await taker.record(node, { egressRate: 1000, contents: { [content]: { requests: 1, bytes: 1000 } } }, now)
  // The node's next heartbeat goes to the other manager: it continues the same average.
  await otherTaker.record(node, { egressRate: 3000, contents: { [content]: { requests: 3, bytes: 3000 } } }, now + 1)
  const tracker = new DemandTracker()
  const controller = new SharedDemand({ catalog: new Catalog(await open()), tracker, logger })
  await controller.refresh()
  assert.is(tracker.byContent(now + 2).get(content)?.bytes, 2000, 'the controller sees the average of both reports')
  assert.is(tracker.egressOf(node, now + 2), 2000)
})

eachEngine(test, 'the signing sequence only grows', async (open) => {
  const a = new PoolMeta(await open())
  const b = new PoolMeta(await open())
  const x = await a.nextSeq()
  const y = await b.nextSeq()
  const z = await a.nextSeq()
  assert.ok(x < y && y < z)
  assert.ok(x > Date.UTC(2026, 0, 1), 'above the clock-based sequences of older managers')
})

test.run()
