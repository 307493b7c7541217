/**
 * A pool for the manager's unit tests: a real catalog (SQLite in a temp dir,
 * or PostgreSQL with CDN_TEST_CATALOG=postgres or `engine`)
 * and in-memory nodes that obey store and delete orders the way real ones do
 * (a blob is stored only if one of its sources has it; a manifest from the
 * manager always can be), so the replication controller can be driven round
 * by round without sockets.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { UpstreamError } from '../../../core/errors.ts'
import { chunkCid, manifestCid } from '../../../core/ids.ts'
import type { DeleteOrder, Deleted, StoreOrder, Stored } from '../../../core/wire.ts'
import { Catalog } from '../../../manager/catalog/catalog.ts'
import { silentLogger } from '../../../core/log.ts'
import { ActionRunner, type ActionOutcome } from '../../../manager/replication/action-runner.ts'
import type { SqlEngine } from '../../../manager/catalog/engine.ts'
import { freshLocation, openTracked, type EngineName } from '../../support/catalog-engines.ts'
import type { NodeClient, OrderOptions } from '../../../manager/nodes/node-client.ts'

export const MANAGER_URL = 'http://manager.test'

const peerPool: string[] = []
/** Real peer ids (placement hashes them), generated once per test process. */
export async function peerIds (n: number): Promise<string[]> {
  while (peerPool.length < n) peerPool.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())
  return peerPool.slice(0, n)
}

/** In-memory nodes: a disk (set of blob ids) per node, reachable unless marked down. */
export class FakeNodes implements NodeClient {
  readonly disks = new Map<string, Set<string>>()
  readonly indexed = new Map<string, Set<string>>()
  readonly down = new Set<string>()
  readonly orders: Array<{ peer: string, order: StoreOrder | DeleteOrder }> = []
  /** called before an order is carried out (tests hold orders here) */
  gate?: (peer: string, order: StoreOrder | DeleteOrder) => Promise<void>
  private readonly byHttp = new Map<string, string>()

  addNode (peer: string, http: string): void {
    this.disks.set(peer, new Set())
    this.indexed.set(peer, new Set())
    this.byHttp.set(http, peer)
  }

  disk (peer: string): Set<string> {
    return this.disks.get(peer)!
  }

  async store (peer: string, order: StoreOrder, _options?: OrderOptions): Promise<Stored> {
    this.orders.push({ peer, order })
    await this.gate?.(peer, order)
    if (this.down.has(peer)) throw new UpstreamError(`store order to node ${peer} failed`)
    const disk = this.disk(peer)
    const results = order.blobs.map(b => {
      const ok = disk.has(b.cid) || b.sources.some(url => this.canServe(url, b.cid))
      if (ok) disk.add(b.cid)
      return ok ? { cid: b.cid, ok } : { cid: b.cid, ok, error: 'no source served it' }
    })
    for (const c of order.contents) {
      if (disk.has(c)) this.indexed.get(peer)!.add(c)
      else results.push({ cid: c, ok: false, error: 'content not indexed: manifest not held' })
    }
    return { type: 'stored', results }
  }

  async delete (peer: string, order: DeleteOrder, _options?: OrderOptions): Promise<Deleted> {
    this.orders.push({ peer, order })
    await this.gate?.(peer, order)
    if (this.down.has(peer)) throw new UpstreamError(`delete order to node ${peer} failed`)
    const disk = this.disk(peer)
    for (const c of order.contents) this.indexed.get(peer)!.delete(c)
    const removed = [...order.blobs, ...order.contents].filter(b => disk.delete(b))
    return { type: 'deleted', removed }
  }

  private canServe (url: string, cid: string): boolean {
    if (url.startsWith(`${MANAGER_URL}/manifest/`)) return true
    const m = /^(http:\/\/[^/]+)\/chunk\/(.+)$/.exec(url)
    if (m == null || m[2] !== cid) return false
    const peer = this.byHttp.get(m[1])
    return peer != null && !this.down.has(peer) && this.disk(peer).has(cid)
  }
}

export interface TestPool {
  dir: string
  db: SqlEngine
  catalog: Catalog
  nodes: FakeNodes
  peers: string[]
  /** publishes a content whose chunk `i` is held (confirmed, on disk) by the peers at `holders[i]` (indexes into `peers`) */
  addContent: (holders: number[][], opts?: { replicas?: number, chunkSize?: number, expiresAt?: number, manifestHolders?: number[] }) => Promise<{ id: string, chunks: string[] }>
  /** reports every node's disk use to the catalog, as heartbeats would */
  heartbeat: (now?: number) => Promise<void>
  /** opens the pool's catalog anew, as a restarted manager would */
  reopen: () => Promise<SqlEngine>
  close: () => Promise<void>
}

export async function makePool (nodeCount: number, opts: { capacity?: number, zones?: string[], engine?: EngineName } = {}): Promise<TestPool> {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-pool-'))
  const engine = opts.engine ?? (process.env.CDN_TEST_CATALOG === 'postgres' ? 'postgres' : 'sqlite')
  const where = engine === 'sqlite' ? { sqlite: join(dir, 'catalog.db') } : await freshLocation('postgres')
  const db = await openTracked(where)
  const catalog = new Catalog(db)
  dbOf.set(catalog, db)
  const nodes = new FakeNodes()
  const peers = await peerIds(nodeCount)
  const sizes = new Map<string, number>()
  for (const [i, peer] of peers.entries()) {
    const http = `http://node-${i}.test`
    nodes.addNode(peer, http)
    await catalog.joinNode({ peerId: peer, http, zone: opts.zones?.[i] ?? null, capacity: opts.capacity ?? 1e9, egressCap: null, addrs: [] }, Date.now())
  }
  let uploads = 0
  return {
    dir,
    db,
    catalog,
    nodes,
    peers,
    async addContent (holders, o = {}) {
      const uploadId = `upload-${uploads++}`
      const chunkSize = o.chunkSize ?? 1024
      await catalog.createUpload({ uploadId, name: uploadId, type: 'application/octet-stream', chunkSize, replicas: o.replicas ?? 3, createdAt: new Date().toISOString(), publisher: 'test' })
      const chunks = holders.map(() => chunkCid(randomBytes(16)).toString())
      const manifest = Buffer.from(JSON.stringify({ chunks, salt: randomBytes(8).toString('hex') }))
      const id = manifestCid(manifest).toString()
      const holderSet = new Set<number>()
      for (const [i, cid] of chunks.entries()) {
        await catalog.addChunk(uploadId, i, cid, chunkSize)
        sizes.set(cid, chunkSize)
        for (const h of holders[i]) {
          await catalog.addCopy(uploadId, cid, peers[h], 'confirmed')
          nodes.disk(peers[h]).add(cid)
          holderSet.add(h)
        }
      }
      for (const h of o.manifestHolders ?? holderSet) {
        await catalog.addCopy(uploadId, id, peers[h], 'confirmed')
        nodes.disk(peers[h]).add(id)
        nodes.indexed.get(peers[h])!.add(id)
      }
      sizes.set(id, manifest.length)
      await catalog.makeVisible(uploadId, { contentId: id, size: chunks.length * chunkSize, chunkCount: chunks.length, manifest, expiresAt: o.expiresAt ?? null })
      return { id, chunks }
    },
    async heartbeat (now = Date.now()) {
      for (const n of await catalog.listNodes()) {
        if (n.state === 'dead') continue
        const used = [...nodes.disk(n.peerId)].reduce((s, b) => s + (sizes.get(b) ?? 0), 0)
        await catalog.heartbeatNode(n.peerId, { http: n.http, capacity: n.capacity, used, egressCap: n.egressCap, egressRate: 0, blobs: nodes.disk(n.peerId).size }, now)
      }
    },
    reopen: async () => await openTracked(where),
    async close () {
      await db.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
}

/** The database under each pool's catalog, for tests that look at rows directly. */
const dbOf = new WeakMap<Catalog, SqlEngine>()

/** Confirmed copies of `cid` on nodes that are not dead, per the catalog. */
export async function confirmedLive (catalog: Catalog, cid: string): Promise<string[]> {
  const live = new Set((await catalog.listNodes()).filter(n => n.state !== 'dead').map(n => n.peerId))
  return (await dbOf.get(catalog)!.prepare("SELECT node FROM copies WHERE cid = ? AND state = 'confirmed'").all(cid) as Array<{ node: string }>)
    .map(r => r.node).filter(n => live.has(n))
}

/** An action runner on the pool's catalog and nodes (min copies 2), each action's outcome noted as `kind:reason:outcome`. */
export function poolRunner (pool: TestPool, outcomes: string[] = []): ActionRunner {
  return new ActionRunner({
    catalog: pool.catalog,
    nodes: pool.nodes,
    manifestUrl: id => `${MANAGER_URL}/manifest/${id}`,
    logger: silentLogger(),
    metrics: { onAction: (kind, reason, outcome: ActionOutcome) => { outcomes.push(`${kind}:${reason}:${outcome}`) }, onBytesMoved: () => {} }
  }, { minCopies: 2 })
}
