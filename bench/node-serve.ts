/**
 * A node's data plane alone, driven the way the proxy drives it: one GET per
 * 1 MiB chunk (+16 tag bytes) over a few keep-alive connections. It reports
 * the node process's CPU milliseconds per MiB served beside the plain file
 * server's (bench/origin-server.ts) in the same run, so a change to
 * node/data-plane.ts or core/bandwidth-limiter.ts can be judged in seconds
 * without a manager, a proxy or the DHT in the measurement.
 *
 *   node bench/node-serve.ts [--mib 256] [--egress unlimited|25MB/s] [--connections 4] [--runs 3] [--no-floor]
 *
 * With BENCH_CPU_PROF=DIR the node is profiled into DIR/node-serve.
 * (`--serve --dir D --egress R` is the child: a BlobStore and a DataPlane
 * wired as node/daemon.ts wires them, nothing else.)
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { BandwidthLimiter } from '../core/bandwidth-limiter.ts'
import { chunkCid } from '../core/ids.ts'
import { createLogger, silentLogger } from '../core/log.ts'
import { createMetricsRegistry } from '../core/metrics.ts'
import { parseRate } from '../core/units.ts'
import { BlobStore } from '../node/blob-store.ts'
import { ContentIndex } from '../node/content-index.ts'
import { DataPlane } from '../node/data-plane.ts'
import { LoadMeter } from '../node/load-meter.ts'
import { createNodeMetrics } from '../node/node-metrics.ts'
import { startChild } from './child.ts'
import { MiB, type BenchContext } from './context.ts'
import { CpuMeter } from './cpu.ts'
import { fileServerFloor } from './floors.ts'
import { round, summarize } from './stats.ts'

const { values } = parseArgs({
  options: {
    serve: { type: 'boolean', default: false },
    dir: { type: 'string' },
    mib: { type: 'string', default: '256' },
    egress: { type: 'string', default: 'unlimited' },
    slice: { type: 'string' },
    connections: { type: 'string', default: '4' },
    runs: { type: 'string', default: '3' },
    'no-floor': { type: 'boolean', default: false }
  }
})

if (values.serve) await serve(String(values.dir), parseRate(values.egress), values.slice == null ? undefined : Number(values.slice))
else await measure()

async function serve (dir: string, rate: number, sliceSize: number | undefined): Promise<void> {
  const log = createLogger('node')
  const store = await BlobStore.open({ dir, capacity: 1e12, logger: log })
  const index = new ContentIndex({ store, logger: log })
  await index.load()
  const registry = createMetricsRegistry('node')
  const plane = new DataPlane({
    store,
    index,
    limiter: new BandwidthLimiter(rate),
    meter: new LoadMeter(),
    metrics: createNodeMetrics(registry, store),
    registry,
    health: () => ({}),
    logger: log.child({ part: 'data-plane' })
  }, { sliceSize })
  const http = await plane.start()
  process.stdout.write(`${JSON.stringify({ ready: true, role: 'node-serve', pid: process.pid, http })}\n`)
  const stop = (): void => { plane.stop().then(() => { process.exit(0) }, () => { process.exit(1) }) }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

async function measure (): Promise<void> {
  const mib = Number(values.mib)
  const connections = Number(values.connections)
  const workDir = await mkdtemp(join(tmpdir(), 'cdn-bench-node-serve-'))
  try {
    const blobDir = join(workDir, 'blobs')
    const ids = await makeBlobs(blobDir, mib)
    const node = await startChild({ role: 'node-serve', args: [import.meta.filename, '--serve', '--dir', blobDir, '--egress', values.egress, ...(values.slice == null ? [] : ['--slice', values.slice])], logFile: join(workDir, 'node-serve.log') })
    const cpu: number[] = []
    const rates: number[] = []
    try {
      const pool = new Pool(String(node.info.http), { connections })
      await fetchAll(pool, ids, connections)
      for (let run = 1; run <= Number(values.runs); run++) {
        const meter = new CpuMeter({ node: [node.pid] })
        await meter.start()
        const started = performance.now()
        const bytes = await fetchAll(pool, ids, connections)
        const seconds = (performance.now() - started) / 1000
        const ms = await meter.stop()
        cpu.push(round(ms.node / (bytes / MiB), 3))
        rates.push(round(bytes / seconds / 1e6, 1))
        process.stderr.write(`run ${run}: node ${cpu.at(-1)} ms/MiB, ${rates.at(-1)} MB/s\n`)
      }
      await pool.close()
    } finally {
      await node.stop()
    }
    const floor = values['no-floor'] ? undefined : await floorOf(workDir, mib)
    const node_ = summarize(cpu)
    process.stdout.write(`${JSON.stringify({ egress: values.egress, connections, mib, nodeMsPerMiB: node_, mbps: summarize(rates), floorMsPerMiB: floor, vsFloor: floor == null ? undefined : round(node_.median / floor, 2) })}\n`)
  } finally {
    await rm(workDir, { recursive: true, force: true })
  }
}

/** `mib` chunk-sized blobs of random bytes in a store at `dir`; their ids. */
async function makeBlobs (dir: string, mib: number): Promise<string[]> {
  const store = await BlobStore.open({ dir, capacity: 1e12, logger: silentLogger() })
  const ids: string[] = []
  for (let i = 0; i < mib; i++) {
    const blob = randomBytes(MiB + 16)
    const cid = chunkCid(blob)
    await store.put(cid, blob)
    ids.push(cid.toString())
  }
  await store.close()
  return ids
}

/** Every blob once, `connections` at a time; the bytes received. */
async function fetchAll (pool: Pool, ids: string[], connections: number): Promise<number> {
  let next = 0
  let bytes = 0
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const id = ids[next++]
      const { statusCode, body } = await pool.request({ path: `/chunk/${id}`, method: 'GET' })
      if (statusCode !== 200) throw new Error(`GET /chunk/${id} answered ${statusCode}`)
      for await (const piece of body) bytes += (piece as Buffer).length
    }
  }
  await Promise.all(Array.from({ length: connections }, worker))
  return bytes
}

async function floorOf (workDir: string, mib: number): Promise<number> {
  const path = join(workDir, 'floor-file')
  await writeFile(path, randomBytes(mib * MiB))
  const ctx = { workDir, signal: new AbortController().signal } as unknown as BenchContext
  const floor = await fileServerFloor(ctx, { path, size: mib * MiB, fingerprint: '' }, 3)
  return floor.msPerMiB
}
