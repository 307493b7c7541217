/**
 * A micro-benchmark of the proxy's data path alone: CPU milliseconds per MiB
 * the proxy's code spends fetching, verifying, decrypting and serving a
 * content, with no manager, DHT or resolver in the way (so it runs beside
 * other benchmarks without sharing a port).
 *
 *   node bench/proxy-path.ts [--mib 256] [--runs 3] [--cache] [--warm 0]
 *
 * A child process serves the encrypted blobs from memory (like a node with a
 * warm page cache); this process runs the real fetch engine, reader and
 * content route behind a node:http server; curl (or a child download) reads
 * the content. Only this process's CPU is counted. `--warm N` then asks N
 * times more for the (now cached) content and prints each first byte's ms. With `--cpu-prof` on this
 * process, `bench/profile-summary.ts` says where the time went.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, get, type Server } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { manifestCid } from '../core/ids.ts'
import { createLogger } from '../core/log.ts'
import type { Manifest } from '../core/manifest.ts'
import { BlobPool } from '../proxy/fetch/blob-pool.ts'
import { ChunkFetcher } from '../proxy/fetch/chunk-fetcher.ts'
import { DeadlineClock } from '../proxy/fetch/deadline.ts'
import { DefaultFetchEngine } from '../proxy/fetch/fetch-engine.ts'
import { Scoreboard } from '../proxy/fetch/scoreboard.ts'
import { serveContent } from '../proxy/http/content-route.ts'
import { DownloadTracker } from '../proxy/http/download-tracker.ts'
import { fullBitmap } from '../core/data-plane-wire.ts'
import type { ContentResolver, ResolvedContent } from '../proxy/resolve/resolver.ts'
import { ChunkCache } from '../proxy/state/chunk-cache.ts'

const MiB = 1024 * 1024

// The content is made in the child too, so the profile of this process holds only the proxy's work.
const BLOB_SERVER = `
const { createServer } = require('node:http')
const { createCipheriv, createHash, randomBytes } = require('node:crypto')
const mib = Number(process.argv[1])
const key = randomBytes(32)
const plain = randomBytes(1024 * 1024)
const blobs = new Map()
const chunks = []
for (let i = 0; i < mib; i++) {
  const nonce = Buffer.alloc(12)
  nonce.writeBigUInt64BE(BigInt(i), 4)
  const c = createCipheriv('aes-256-gcm', key, nonce)
  const blob = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()])
  // CIDv1 raw sha2-256, base32: 0x01 0x55 0x12 0x20 digest
  const bytes = Buffer.concat([Buffer.from([1, 0x55, 0x12, 0x20]), createHash('sha256').update(blob).digest()])
  let bits = 0, value = 0, out = 'b'
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567'
  for (const byte of bytes) { value = (value << 8) | byte; bits += 8; while (bits >= 5) { out += alphabet[(value >>> (bits - 5)) & 31]; bits -= 5 } }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31]
  chunks.push(out)
  blobs.set(out, blob)
}
createServer((req, res) => {
  const b = blobs.get(req.url.slice('/chunk/'.length))
  if (b == null) { res.writeHead(404); res.end(); return }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': b.length })
  res.end(b)
}).listen(0, '127.0.0.1', function () { console.log(JSON.stringify({ port: this.address().port, key: key.toString('base64'), chunks })) })
`

interface BlobServer { proc: ChildProcess, url: string, key: Uint8Array, chunks: string[] }

async function startBlobServer (mib: number): Promise<BlobServer> {
  const proc = spawn(process.execPath, ['-e', BLOB_SERVER, String(mib)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]()
  const info = JSON.parse(String((await lines.next()).value)) as { port: number, key: string, chunks: string[] }
  return { proc, url: `http://127.0.0.1:${info.port}`, key: Buffer.from(info.key, 'base64'), chunks: info.chunks }
}

function manifestOf (chunks: string[]): { manifest: Manifest, id: string } {
  const mib = chunks.length
  const manifest: Manifest = { v: 1, size: mib * MiB, chunkSize: MiB, chunks, createdAt: new Date().toISOString(), publisher: 'bench', cipher: 'aes-256-gcm', meta: '', signer: 'bench', sig: '' }
  return { manifest, id: manifestCid(Buffer.from(JSON.stringify(manifest))).toString() }
}

function cpuMs (): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

async function curl (url: string): Promise<number> {
  return await new Promise((resolve, reject) => {
    const p = spawn('curl', ['-sS', '-o', '/dev/null', '-w', '%{size_download}', url], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d: Buffer) => { out += d.toString() })
    p.once('error', reject)
    p.once('close', (code) => { code === 0 ? resolve(Number(out)) : reject(new Error(`curl exited ${String(code)}`)) })
  })
}

/** ms from sending a GET to its first body byte; the rest is not read. */
async function firstByteMs (url: string): Promise<number> {
  const t0 = performance.now()
  return await new Promise((resolve, reject) => {
    get(url, (res) => {
      res.once('data', () => {
        resolve(performance.now() - t0)
        res.destroy()
      })
      res.once('error', () => {})
    }).once('error', reject)
  })
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { mib: { type: 'string', default: '256' }, runs: { type: 'string', default: '3' }, cache: { type: 'boolean', default: false }, warm: { type: 'string', default: '0' } } })
  const mib = Number(values.mib)
  const work = await mkdtemp(join(tmpdir(), 'proxy-path-'))
  const servers: BlobServer[] = []
  let gateway: Server | undefined
  let engine: DefaultFetchEngine | undefined
  let fetcher: ChunkFetcher | undefined
  try {
    servers.push(await startBlobServer(mib))
    const { key } = servers[0]
    const { manifest, id } = manifestOf(servers[0].chunks)
    const logger = createLogger('proxy-path')
    const deadlines = new DeadlineClock()
    const pool = new BlobPool()
    fetcher = new ChunkFetcher({ deadlines, logger, pool })
    const sources = servers.map((s, i) => ({ id: `node-${i}`, url: s.url, have: fullBitmap(manifest.chunks.length) }))
    const resolved: ResolvedContent = { id, cid: manifestCid(Buffer.from(JSON.stringify(manifest))), manifest, key, metadata: { name: 'bench.bin', type: 'application/octet-stream' }, sources, viaManager: false }
    const resolver: ContentResolver = { resolve: async () => resolved, invalidate: () => {} }
    for (let run = 1; run <= Number(values.runs); run++) {
      // A fresh cache per run, as a fresh proxy would have: every chunk comes from the sources.
      let cache: ChunkCache | undefined
      if (values.cache === true) {
        cache = new ChunkCache({ dir: join(work, `cache-${run}`), maxBytes: 4e9, logger })
        await cache.open()
      }
      engine = new DefaultFetchEngine({ resolver, fetcher, scoreboard: new Scoreboard(), cache, logger })
      const tracker = new DownloadTracker()
      const e = engine
      gateway = createServer((req, res) => {
        serveContent({ engine: e, tracker, logger }, req, res, id, { key }).catch((err: unknown) => { res.destroy(err as Error) })
      })
      await new Promise<void>(resolve => { gateway!.listen(0, '127.0.0.1', resolve) })
      const port = (gateway.address() as { port: number }).port
      const before = cpuMs()
      const t0 = performance.now()
      const got = await curl(`http://127.0.0.1:${port}/c/${id}`)
      const seconds = (performance.now() - t0) / 1000
      const used = cpuMs() - before
      if (got !== mib * MiB) throw new Error(`got ${got} bytes, expected ${mib * MiB}`)
      process.stdout.write(`${JSON.stringify({ run, mib, cache: values.cache, cpuMsPerMiB: Math.round(used / mib * 1000) / 1000, mbps: Math.round(mib * MiB / 1e6 / seconds), pool: pool.stats() })}\n`)
      const warm: number[] = []
      for (let w = 0; w < Number(values.warm); w++) warm.push(await firstByteMs(`http://127.0.0.1:${port}/c/${id}`))
      if (warm.length > 0) process.stdout.write(`${JSON.stringify({ run, warmFirstByteMs: warm.map(ms => Math.round(ms * 10) / 10) })}\n`)
      await new Promise<void>(resolve => { gateway!.close(() => { resolve() }) })
      gateway.closeAllConnections()
      gateway = undefined
      await engine.close()
      await cache?.close()
    }
    deadlines.close()
  } finally {
    gateway?.close()
    await engine?.close()
    await fetcher?.close()
    for (const s of servers) s.proc.kill()
    await rm(work, { recursive: true, force: true })
  }
}

await main()
