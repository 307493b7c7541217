import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../../core/log.ts'
import { signRecord, type ListedManager, type ManagerListBody } from '../../../core/signed-record.ts'
import { ControlEndpoint } from '../../../node/control-endpoint.ts'
import { PoolManagers, PoolMismatchError, type ManagerTarget } from '../../../node/pool-managers.ts'

const logger = silentLogger()
const DAY = 24 * 3600_000

interface Peer { key: PrivateKey, id: string, addr: string, listed: ListedManager }

async function peer (port: number): Promise<Peer> {
  const key = await generateKeyPair('Ed25519')
  const id = peerIdFromPrivateKey(key).toString()
  const addr = `/ip4/127.0.0.1/tcp/${port}/p2p/${id}`
  return { key, id, addr, listed: { peerId: id, multiaddrs: [addr], http: `http://127.0.0.1:${port + 1000}` } }
}

const pool = await peer(1)
const otherPool = await peer(2)
const configured = await peer(7071)
const b = await peer(7081)
const c = await peer(7091)
const stranger = await peer(7101)

async function list (seq: number, managers: ListedManager[], opts: { key?: PrivateKey, iat?: number, exp?: number } = {}): Promise<string> {
  const key = opts.key ?? pool.key
  const iat = opts.iat ?? Date.now()
  const body: ManagerListBody = { kind: 'manager-list', iss: peerIdFromPrivateKey(key).toString(), iat, exp: opts.exp ?? iat + DAY, seq, managers }
  return await signRecord(body, key)
}

let dir = ''
let file = ''
test.before.each(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdn-pool-managers-'))
  file = join(dir, 'pool.json')
})
test.after.each(async () => { await rm(dir, { recursive: true, force: true }) })

async function open (now?: () => number): Promise<PoolManagers> {
  return await PoolManagers.open({ logger, ...(now != null ? { now } : {}) }, { configured: { peerId: configured.id, multiaddrs: [configured.addr] }, file })
}

const ids = (targets: ManagerTarget[]): string[] => targets.map(t => t.peerId)

/** A node that learnt the pool and the list [configured, b, c] at `seq`. */
async function joined (seq = 5): Promise<PoolManagers> {
  const m = await open()
  await m.learn({ pool: pool.id, managers: await list(seq, [configured.listed, b.listed, c.listed]) }, configured.id)
  return m
}

test('the pool id is learnt from the configured manager only, and kept on disk', async () => {
  const m = await open()
  assert.is(m.pool, undefined)
  await m.learn({ pool: pool.id, managers: await list(1, [b.listed]) }, b.id)
  assert.is(m.pool, undefined, 'another manager cannot introduce a pool')
  assert.is(m.allows(b.id), false)
  await m.learn({ pool: pool.id }, configured.id)
  assert.is(m.pool, pool.id)
  assert.equal(JSON.parse(await readFile(file, 'utf8')), { pool: pool.id })
})

test('a verified list makes its managers obeyed and heartbeat targets, the configured one first', async () => {
  const m = await open()
  await m.learn({ pool: pool.id, managers: await list(5, [b.listed, configured.listed, c.listed]) }, configured.id)
  assert.is(m.seq, 5)
  for (const p of [configured, b, c]) assert.ok(m.allows(p.id), p.id)
  assert.is(m.allows(stranger.id), false)
  assert.equal(ids(m.targets()), [configured.id, b.id, c.id])
  assert.equal(m.targets()[1].multiaddrs, [b.addr])
})

test('a forged list is refused and the kept one stays', async () => {
  const m = await joined()
  const good = await list(9, [configured.listed, b.listed])
  const [body, sig] = good.split('.')
  const forgedBody = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'))
  forgedBody.managers.push(stranger.listed)
  const forged = `${Buffer.from(JSON.stringify(forgedBody)).toString('base64url')}.${sig}`
  await m.learn({ pool: pool.id, managers: forged }, b.id)
  assert.is(m.seq, 5)
  assert.is(m.allows(stranger.id), false)
  assert.ok(m.allows(c.id))
})

test('a list signed by another key is refused, whatever it claims as issuer', async () => {
  const m = await joined()
  await m.learn({ pool: pool.id, managers: await list(9, [stranger.listed], { key: otherPool.key }) }, b.id)
  // Issued in the pool's name, signed by another key: the signature fails.
  const body: ManagerListBody = { kind: 'manager-list', iss: pool.id, iat: Date.now(), exp: Date.now() + DAY, seq: 10, managers: [stranger.listed] }
  const [json] = (await signRecord(body, otherPool.key)).split('.')
  const otherSig = (await signRecord({ ...body, iss: otherPool.id }, otherPool.key)).split('.')[1]
  await m.learn({ managers: `${json}.${otherSig}` }, b.id)
  assert.is(m.seq, 5)
  assert.is(m.allows(stranger.id), false)
})

test('an older or equal seq never replaces the kept list; a newer one does', async () => {
  const m = await joined(5)
  await m.learn({ pool: pool.id, managers: await list(4, [configured.listed, stranger.listed]) }, b.id)
  await m.learn({ pool: pool.id, managers: await list(5, [configured.listed, stranger.listed]) }, b.id)
  assert.is(m.allows(stranger.id), false)
  assert.ok(m.allows(c.id))
  await m.learn({ pool: pool.id, managers: await list(6, [configured.listed, b.listed]) }, b.id)
  assert.is(m.seq, 6)
  assert.is(m.allows(c.id), false, 'a manager dropped from the newer list gives no more orders')
  assert.equal(ids(m.targets()), [configured.id, b.id])
})

test('a different pool id, from a listed manager or the configured one, is refused and changes nothing', async () => {
  const m = await joined()
  for (const from of [b.id, configured.id]) {
    try {
      await m.learn({ pool: otherPool.id, managers: await list(99, [stranger.listed], { key: otherPool.key }) }, from)
      assert.unreachable('a foreign pool was accepted')
    } catch (err) {
      assert.instance(err, PoolMismatchError)
      assert.is((err as PoolMismatchError).code, 'ERR_POOL_MISMATCH')
    }
  }
  assert.is(m.pool, pool.id)
  assert.is(m.seq, 5)
  assert.is(m.allows(stranger.id), false)
  assert.is(JSON.parse(await readFile(file, 'utf8')).pool, pool.id)
})

test('a new list must verify unexpired', async () => {
  const m = await joined()
  await m.learn({ managers: await list(9, [configured.listed, stranger.listed], { iat: Date.now() - 2 * DAY, exp: Date.now() - DAY }) }, b.id)
  assert.is(m.seq, 5)
  assert.is(m.allows(stranger.id), false)
})

test('the pool and the list survive a restart, even once the list expired', async () => {
  // Learnt two days ago, expired yesterday.
  const twoDaysAgo = Date.now() - 2 * DAY
  const first = await open(() => twoDaysAgo)
  await first.learn({ pool: pool.id, managers: await list(7, [configured.listed, b.listed, c.listed], { iat: twoDaysAgo, exp: twoDaysAgo + DAY }) }, configured.id)
  assert.is(first.seq, 7)
  const again = await open()
  assert.is(again.pool, pool.id)
  assert.is(again.seq, 7)
  assert.equal(ids(again.targets()), [configured.id, b.id, c.id])
  assert.ok(again.allows(c.id))
  // Still the same pool after the restart: a different one is refused.
  try {
    await again.learn({ pool: otherPool.id }, configured.id)
    assert.unreachable('a foreign pool was accepted after a restart')
  } catch (err) {
    assert.instance(err, PoolMismatchError)
  }
  // A newer list that expired as well is refused: only the one kept on disk gets that leeway.
  await again.learn({ managers: await list(8, [configured.listed], { iat: twoDaysAgo, exp: twoDaysAgo + DAY }) }, b.id)
  assert.is(again.seq, 7)
  await again.learn({ managers: await list(8, [configured.listed]) }, b.id)
  assert.is(again.seq, 8)
})

test('a kept list that no longer verifies is dropped at start; a damaged file refuses to start', async () => {
  await writeFile(file, JSON.stringify({ pool: otherPool.id, managers: await list(3, [b.listed]) }))
  const m = await open()
  assert.is(m.pool, otherPool.id)
  assert.is(m.seq, undefined)
  assert.is(m.allows(b.id), false)

  await writeFile(file, '{"pool": ')
  try {
    await open()
    assert.unreachable('a damaged pool.json was accepted')
  } catch (err: any) {
    assert.is(err.code, 'ERR_BAD_INPUT')
    assert.match(err.message, /pool\.json/)
  }
})

test('listed addresses that do not end in the manager\'s own peer id are not dialled', async () => {
  const m = await open()
  const sneaky: ListedManager = { ...b.listed, multiaddrs: [c.addr, '/ip4/127.0.0.1/tcp/9', 'nonsense', b.addr] }
  const unreachable: ListedManager = { ...c.listed, multiaddrs: ['/ip4/127.0.0.1/tcp/9'] }
  await m.learn({ pool: pool.id, managers: await list(1, [sneaky, unreachable, { ...configured.listed, multiaddrs: ['/ip4/10.0.0.1/tcp/7071/p2p/' + configured.id] }]) }, configured.id)
  assert.equal(m.targets(), [
    { peerId: configured.id, multiaddrs: [configured.addr, '/ip4/10.0.0.1/tcp/7071/p2p/' + configured.id] },
    { peerId: b.id, multiaddrs: [b.addr] }
  ])
  assert.ok(m.allows(c.id), 'a listed manager without an address still gives orders')
})

test('a manager from before several managers: only the configured one, as before', async () => {
  const m = await open()
  await m.learn({}, configured.id)
  assert.equal(ids(m.targets()), [configured.id])
  assert.ok(m.allows(configured.id))
  assert.is(m.allows(b.id), false)
})

test('the control endpoint obeys a listed manager and refuses an unlisted peer before executing anything', async () => {
  const m = await joined()
  const executed: string[] = []
  const endpoint = new ControlEndpoint({
    logger,
    managers: m,
    executor: { execute: async (order) => { executed.push(order.type); return { type: 'deleted', removed: [] } } }
  }, { managerPeerId: configured.id })
  const order = { type: 'delete', blobs: [], contents: [] }
  assert.ok(endpoint.allows(b.id))
  assert.is(endpoint.allows(stranger.id), false)
  assert.equal(await endpoint.handle(order, c.id), { type: 'deleted', removed: [] })
  try {
    await endpoint.handle(order, stranger.id)
    assert.unreachable('an unlisted peer was obeyed')
  } catch (err: any) {
    assert.is(err.code, 'ERR_FORBIDDEN')
  }
  assert.equal(executed, ['delete'])
  // A newer list without c: c is refused from then on.
  await m.learn({ managers: await list(6, [configured.listed, b.listed]) }, b.id)
  assert.is(endpoint.allows(c.id), false)
  await endpoint.stop()
})

test.run()
