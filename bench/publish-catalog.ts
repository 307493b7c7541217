/**
 * Publish throughput with the manager's catalog on SQLite and on PostgreSQL:
 * a manager and 4 nodes (bench/cdn-network.ts, every role its own process),
 * one file published with `cdn publish` (3 copies per chunk), per engine,
 * alternating engines over `--runs` rounds. PostgreSQL is a throwaway
 * cluster with fsync on (test/support/postgres.ts); the manager reaches it
 * through CDN_DATABASE_URL, as an operator's would.
 *
 *   node bench/publish-catalog.ts [--size 256MiB] [--runs 2]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parseSize } from '../core/units.ts'
import { startPostgres } from '../test/support/postgres.ts'
import { CdnNetwork } from './cdn-network.ts'
import { makeRandomFile } from './files.ts'

const { values: args } = parseArgs({ options: { size: { type: 'string', default: '256MiB' }, runs: { type: 'string', default: '2' } } })
const size = parseSize(args.size)
const runs = Number(args.runs)
const MiB = 1024 * 1024

const work = await mkdtemp(join(tmpdir(), 'cdn-bench-publish-'))
const cluster = await startPostgres({ durable: true })
const file = join(work, 'upload.bin')
await makeRandomFile(file, size)

async function once (engine: 'sqlite' | 'postgres', run: number): Promise<number> {
  const url = engine === 'postgres' ? await cluster.createDatabase() : undefined
  // The children inherit the environment; only the manager reads CDN_DATABASE_URL.
  if (url != null) process.env.CDN_DATABASE_URL = url
  else delete process.env.CDN_DATABASE_URL
  const net = await CdnNetwork.start({ dir: join(work, `${engine}-${run}`), nodes: Array.from({ length: 4 }, () => ({ egress: 'unlimited' })) })
  try {
    const out = await net.publish(file, 3)
    return size / MiB / out.seconds
  } finally {
    await net.stop()
  }
}

try {
  const results: Record<string, number[]> = { sqlite: [], postgres: [] }
  for (let r = 0; r < runs; r++) {
    for (const engine of ['sqlite', 'postgres'] as const) {
      const mibps = await once(engine, r)
      results[engine].push(Math.round(mibps * 10) / 10)
      process.stderr.write(`${engine} run ${r + 1}: ${mibps.toFixed(1)} MiB/s\n`)
    }
  }
  process.stdout.write(`${JSON.stringify({ size, replicas: 3, nodes: 4, mibPerSecond: results })}\n`)
} finally {
  delete process.env.CDN_DATABASE_URL
  await cluster.stop()
  await rm(work, { recursive: true, force: true })
}
