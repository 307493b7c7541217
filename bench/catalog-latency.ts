/**
 * Catalog query latency on SQLite and on PostgreSQL, for a pool shaped like
 * bench/sim.ts's (same generator: nodes in 20 zones, contents of 1 to 4
 * chunks, 3 copies each on random nodes, plus each holder's manifest copy):
 * 1,000 nodes and 100,000 chunks loaded into both engines, then the
 * replication controller's main reads timed (median of several runs).
 * PostgreSQL is a throwaway cluster (test/support/postgres.ts, fsync on).
 *
 *   node bench/catalog-latency.ts [--nodes 1000] [--chunks 100000] [--runs 7]
 */
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CID } from 'multiformats/cid'
import { create as createDigest } from 'multiformats/hashes/digest'
import { Catalog } from '../manager/catalog/catalog.ts'
import type { Param, SqlEngine } from '../manager/catalog/engine.ts'
import { openEngine, type CatalogLocation } from '../manager/catalog/open.ts'
import { DemandTracker } from '../manager/replication/demand-tracker.ts'
import { PoolSnapshotter } from '../manager/replication/pool-snapshot.ts'
import { DEFAULT_POLICY } from '../manager/replication/replication-policy.ts'
import { startPostgres } from '../test/support/postgres.ts'
import { seededRandom } from './seeded-random.ts'

const { values: args } = parseArgs({ options: { nodes: { type: 'string', default: '1000' }, chunks: { type: 'string', default: '100000' }, runs: { type: 'string', default: '7' }, seed: { type: 'string', default: '1' } } })
const NODES = Number(args.nodes)
const CHUNKS = Number(args.chunks)
const RUNS = Number(args.runs)

const fakeCid = (label: string, codec = 0x55): string => CID.createV1(codec, createDigest(0x12, createHash('sha256').update(label).digest())).toString()

interface Pool { nodes: Param[][], contents: Param[][], chunks: Param[][], copies: Param[][] }

/** Real peer ids: placement hashes them into Kademlia keys. */
const peers: string[] = []
for (let i = 0; i < NODES; i++) peers.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())

function generate (): Pool {
  const rand = seededRandom(Number(args.seed))
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]
  const now = Date.now()
  const pool: Pool = { nodes: [], contents: [], chunks: [], copies: [] }
  for (let i = 0; i < NODES; i++) {
    pool.nodes.push([peers[i], `http://10.0.${i >> 8}.${i & 255}:7000`, `z${Math.floor(rand() * 20)}`, pick([4, 8, 16, 32]) * 1e12, 0, pick([25, 50, 100, 200]) * 1e6, 0, 0, 'alive', now, now, '[]', 0])
  }
  let made = 0
  for (let i = 0; made < CHUNKS; i++) {
    const n = Math.min(1 + Math.floor(rand() * 4), CHUNKS - made)
    const id = fakeCid(`m${i}`, 0x0129)
    pool.contents.push([id, 'visible', `content-${i}`, 'video/mp4', n * 1048576, 1048576, n, 3, new Date(now + i).toISOString(), 'bench', Buffer.alloc(200), null, 0, null])
    const holders = new Set<string>()
    for (let k = 0; k < n; k++) {
      const cid = fakeCid(`c${i}/${k}`)
      pool.chunks.push([id, k, cid, 1048592])
      const on = new Set<string>()
      while (on.size < 3) on.add(peers[Math.floor(rand() * NODES)])
      for (const node of on) { pool.copies.push([id, cid, node, 'confirmed']); holders.add(node) }
    }
    for (const node of holders) pool.copies.push([id, id, node, 'confirmed'])
    made += n
  }
  return pool
}

const COLUMNS = {
  nodes: ['peer_id', 'http', 'zone', 'capacity', 'used', 'egress_cap', 'egress_rate', 'blobs', 'state', 'last_seen', 'joined_at', 'addrs', 'drain'],
  contents: ['id', 'state', 'name', 'type', 'size', 'chunk_size', 'chunk_count', 'replicas', 'created_at', 'publisher', 'manifest', 'expires_at', 'private', 'owner'],
  chunks: ['content', 'idx', 'cid', 'size'],
  copies: ['content', 'cid', 'node', 'state']
} as const

async function load (db: SqlEngine, pool: Pool): Promise<void> {
  await db.transaction(async () => {
    for (const table of ['nodes', 'contents', 'chunks', 'copies'] as const) {
      const cols = COLUMNS[table]
      const rows = pool[table]
      for (let i = 0; i < rows.length; i += 500) {
        const batch = rows.slice(i, i + 500)
        const values = Array(batch.length).fill(`(${cols.map(() => '?').join(', ')})`).join(', ')
        await db.prepare(`INSERT INTO ${table} (${cols.join(', ')}) VALUES ${values}`).run(...batch.flat())
      }
    }
  })
  await db.exec('ANALYZE')
}

async function median (fn: () => Promise<unknown>): Promise<number> {
  await fn()
  const times: number[] = []
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now()
    await fn()
    times.push(performance.now() - t0)
  }
  times.sort((a, b) => a - b)
  return Math.round(times[Math.floor(times.length / 2)] * 10) / 10
}

async function measure (engine: string, where: CatalogLocation, pool: Pool): Promise<Record<string, number | string>> {
  const db = await openEngine(where)
  try {
    const t0 = performance.now()
    await load(db, pool)
    const loadMs = Math.round(performance.now() - t0)
    const catalog = new Catalog(db)
    const snapshots = new PoolSnapshotter({ catalog, demand: new DemandTracker(), moves: { isBusy: () => false, usageChange: () => 0 } })
    return {
      engine,
      loadMs,
      snapshotMs: await median(async () => await snapshots.take(Date.now(), DEFAULT_POLICY.uncappedEgress)),
      holdingsByNodeMs: await median(async () => await catalog.holdingsByNode()),
      copyCountsMs: await median(async () => await catalog.summaries()),
      replicationSummaryMs: await median(async () => await catalog.replicationSummary(2)),
      listNodesMs: await median(async () => await catalog.listNodes()),
      getVisibleMs: await median(async () => await catalog.getVisible(pool.contents[Math.floor(pool.contents.length / 2)][0] as string))
    }
  } finally {
    await db.close()
  }
}

const pool = generate()
process.stderr.write(`pool: ${NODES} nodes, ${pool.contents.length} contents, ${pool.chunks.length} chunks, ${pool.copies.length} copy rows\n`)
const dir = await mkdtemp(join(tmpdir(), 'cdn-bench-catalog-'))
const cluster = await startPostgres({ durable: true })
try {
  const results = [
    await measure('sqlite', { sqlite: join(dir, 'catalog.db') }, pool),
    await measure('postgres', { postgresUrl: await cluster.createDatabase() }, pool)
  ]
  for (const r of results) process.stdout.write(`${JSON.stringify({ nodes: NODES, chunks: pool.chunks.length, runs: RUNS, ...r })}\n`)
} finally {
  await cluster.stop()
  await rm(dir, { recursive: true, force: true })
}
