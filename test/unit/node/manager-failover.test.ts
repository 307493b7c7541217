/**
 * The manager link over several managers, with the real pool-managers module
 * and fake call targets: who is called, in which order, after which failure.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { silentLogger } from '../../../core/log.ts'
import { signRecord, type ListedManager, type ManagerListBody } from '../../../core/signed-record.ts'
import type { NodeToManager } from '../../../core/wire.ts'
import { heartbeatCallTimeout, ManagerLink, type ManagerLinkComponents, type NodeReport } from '../../../node/manager-link.ts'
import { PoolManagers, type ManagerTarget } from '../../../node/pool-managers.ts'

const logger = silentLogger()
const CONTENT = 'bagaaierafvyrmqvxe2yeialcpsu7xlbs6xefgd5rsa6mjwycewdrpeq2jcaq'

async function waitFor (what: string, check: () => boolean, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs
  while (!check()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`)
    await sleep(5)
  }
}

interface Peer { key: PrivateKey, id: string, listed: ListedManager }
async function peer (name: string, port: number): Promise<Peer & { name: string }> {
  const key = await generateKeyPair('Ed25519')
  const id = peerIdFromPrivateKey(key).toString()
  return { name, key, id, listed: { peerId: id, multiaddrs: [`/ip4/127.0.0.1/tcp/${port}/p2p/${id}`], http: `http://127.0.0.1:${port}` } }
}

const pool = await peer('pool', 1)
const otherPool = await peer('other', 2)
const A = await peer('A', 7071)
const B = await peer('B', 7081)
const C = await peer('C', 7091)
const names = new Map([A, B, C].map(p => [p.id, p.name]))

async function managerList (seq: number, managers: ListedManager[], key = pool.key): Promise<string> {
  const iat = Date.now()
  const body: ManagerListBody = { kind: 'manager-list', iss: peerIdFromPrivateKey(key).toString(), iat, exp: iat + 3600_000, seq, managers }
  return await signRecord(body, key)
}
const listABC = await managerList(1, [A.listed, B.listed, C.listed])

function report (): NodeReport {
  return { http: 'http://127.0.0.1:9', capacity: 1000, used: 10, egressRate: 5, blobs: 1, contents: {}, held: [CONTENT] }
}

let dir = ''
test.before.each(async () => { dir = await mkdtemp(join(tmpdir(), 'cdn-failover-')) })
test.after.each(async () => { await rm(dir, { recursive: true, force: true }) })

async function directory (): Promise<PoolManagers> {
  return await PoolManagers.open({ logger }, { configured: { peerId: A.id, multiaddrs: A.listed.multiaddrs }, file: join(dir, 'pool.json') })
}

type Answer = (request: NodeToManager, signal: AbortSignal) => Promise<unknown>
const joined = { type: 'joined', heartbeatMs: 5, pool: pool.id, managers: listABC }
const ack = { type: 'ack', known: true, drop: [], pool: pool.id, managers: listABC }
const refused = async (): Promise<never> => { throw new Error('connection refused') }

/** A link over `managers` whose calls go to `answer` by manager; `calls` records "A:join", "B:heartbeat", … */
function linkTo (managers: PoolManagers, answer: (m: string, n: number) => Answer, extra: Partial<ManagerLinkComponents> = {}, init: Record<string, number> = {}): { link: ManagerLink, calls: string[], targets: ManagerTarget[] } {
  const calls: string[] = []
  const targets: ManagerTarget[] = []
  const counts = new Map<string, number>()
  const link = new ManagerLink({
    logger,
    report,
    managers,
    call: async (request, signal, manager) => {
      const name = names.get(manager.peerId) ?? '?'
      const n = (counts.get(name) ?? 0) + 1
      counts.set(name, n)
      calls.push(`${name}:${request.type}`)
      targets.push(manager)
      return await answer(name, n)(request, signal)
    },
    ...extra
  }, { joinToken: 'T', retryMinMs: 1, retryMaxMs: 5, ...init })
  return { link, calls, targets }
}

test('after a failure the next heartbeat goes to the next listed manager, round robin, the configured one included', async () => {
  const managers = await directory()
  let phase2 = false
  const { link, calls, targets } = linkTo(managers, (name, n) => async (request) => {
    if (name === 'A') {
      if (request.type === 'join') return joined
      if (n <= 3 || phase2) return ack
      return await refused()
    }
    if (name === 'B') return await refused()
    if (n <= 2) return ack
    phase2 = true
    return await refused()
  })
  link.start()
  try {
    await waitFor('ten calls', () => calls.length >= 10)
  } finally {
    await link.stop()
  }
  assert.equal(calls.slice(0, 10), [
    'A:join', 'A:heartbeat', 'A:heartbeat', 'A:heartbeat', // A dies
    'B:heartbeat', // B is dead too
    'C:heartbeat', 'C:heartbeat', 'C:heartbeat', // C dies, A is back
    'A:heartbeat', 'A:heartbeat'
  ])
  assert.equal(targets[4].multiaddrs, B.listed.multiaddrs, 'the listed manager is dialled at its listed addresses')
  assert.is(link.manager, A.id)
  assert.is(managers.pool, pool.id)
})

test('a listed manager answering for another pool is left for the next one, and its drop list is not obeyed', async () => {
  const managers = await directory()
  const drops: string[][] = []
  const foreign = { type: 'ack', known: true, drop: [CONTENT], pool: otherPool.id, managers: await managerList(50, [B.listed], otherPool.key) }
  const { link, calls } = linkTo(managers, (name, n) => async (request) => {
    if (name === 'A') return request.type === 'join' ? joined : n <= 2 ? ack : await refused()
    if (name === 'B') return foreign
    return ack
  }, { onDrop: async (contents) => { drops.push(contents) } })
  link.start()
  try {
    await waitFor('two heartbeats to C', () => calls.filter(c => c === 'C:heartbeat').length >= 2)
  } finally {
    await link.stop()
  }
  assert.equal(calls.slice(0, 5), ['A:join', 'A:heartbeat', 'A:heartbeat', 'B:heartbeat', 'C:heartbeat'])
  assert.equal(drops, [])
  assert.is(managers.pool, pool.id)
  assert.is(managers.seq, 1)
})

test('a manager that does not know the node gets a join, and the node stays with it', async () => {
  const managers = await directory()
  const { link, calls } = linkTo(managers, (name, n) => async (request) => {
    if (name === 'A') return request.type === 'join' ? joined : await refused()
    if (name === 'B' && request.type === 'heartbeat' && n === 1) return { ...ack, known: false }
    return request.type === 'join' ? joined : ack
  })
  link.start()
  try {
    await waitFor('two heartbeats to B after its join', () => calls.filter(c => c === 'B:heartbeat').length >= 3)
  } finally {
    await link.stop()
  }
  assert.equal(calls.slice(0, 6), ['A:join', 'A:heartbeat', 'B:heartbeat', 'B:join', 'B:heartbeat', 'B:heartbeat'])
})

test('a manager that never answers a heartbeat is given up after the heartbeat deadline, for the next one', async () => {
  const managers = await directory()
  let cut = false
  const { link, calls } = linkTo(managers, (name) => async (request, signal) => {
    if (name === 'A') {
      if (request.type === 'join') return joined
      // Silent: only the link's own deadline ends this call.
      return await new Promise((_resolve, reject) => { signal.addEventListener('abort', () => { cut = true; reject(signal.reason) }, { once: true }) })
    }
    return ack
  }, {}, { heartbeatCallMs: 50 })
  link.start()
  try {
    await waitFor('a heartbeat to B', () => calls.includes('B:heartbeat'))
  } finally {
    await link.stop()
  }
  assert.ok(cut, 'the silent call was aborted')
  assert.equal(calls.slice(0, 3), ['A:join', 'A:heartbeat', 'B:heartbeat'])
})

test('the backoff grows per round over the list, not per manager tried', async () => {
  const managers = await directory()
  // With the backoff doubling per failure from 1 ms, the 18th retry alone would wait over a minute.
  const { link, calls } = linkTo(managers, (name) => async (request) => name === 'A' && request.type === 'join' ? joined : await refused(), {}, { retryMaxMs: 600_000 })
  link.start()
  try {
    await waitFor('six rounds over three managers', () => calls.length >= 19, 30_000)
  } finally {
    await link.stop()
  }
  assert.equal(calls.slice(1, 10), ['A:heartbeat', 'B:heartbeat', 'C:heartbeat', 'A:heartbeat', 'B:heartbeat', 'C:heartbeat', 'A:heartbeat', 'B:heartbeat', 'C:heartbeat'])
})

test('with several managers, two silent ones and the retries between them fit in the dead-node deadline; one manager keeps its whole interval', () => {
  for (const interval of [5000, 10_000, 30_000]) {
    const perSilent = heartbeatCallTimeout(interval, 3)
    // The last good heartbeat up to an interval ago, two silent managers, two first retries of at most 500 ms each.
    assert.ok(interval + 2 * perSilent + 2 * 500 < 3 * interval, `interval ${interval}: ${perSilent} ms per silent manager`)
  }
  assert.is(heartbeatCallTimeout(5000, 3), 2500)
  assert.is(heartbeatCallTimeout(5000, 1), 5000)
  assert.is(heartbeatCallTimeout(500, 1), 2000)
  assert.is(heartbeatCallTimeout(60_000, 2), 15_000)
})

test.run()
