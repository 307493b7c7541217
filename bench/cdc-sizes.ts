/**
 * Chooses the content-defined chunker's min / avg / max by measurement. A
 * random file (256 MiB by default) and two edited copies of it (4 KiB
 * inserted at the start, 1 MiB overwritten in the middle) are cut with each
 * candidate size set, and with fixed 1 MiB chunks for comparison. Reported
 * per candidate: chunk count and mean size, MiB/s of chunking (median of
 * `--runs`, the stream fed in 64 KiB pieces as a socket would, nothing else
 * timed), and for each edit the share of the edited file's chunks already in
 * the original plus the bytes of the chunks that are not (what a differential
 * upload would send). One JSON line per candidate on stdout.
 *
 *   node bench/cdc-sizes.ts [--mib 256] [--runs 3]
 */
import { createCipheriv, createHash } from 'node:crypto'
import { parseArgs } from 'node:util'
import { cdcChunks, type CdcSizes } from '../core/cdc-chunker.ts'
import { chunkStream } from '../core/chunker.ts'

const { values: args } = parseArgs({ options: { mib: { type: 'string', default: '256' }, runs: { type: 'string', default: '3' } } })
const MiB = 1024 * 1024
const KiB = 1024
const SIZE = Number(args.mib) * MiB
const RUNS = Number(args.runs)
const PIECE = 64 * KiB

type Candidate = { label: string, fixed: number } | { label: string, cdc: CdcSizes }

const CANDIDATES: Candidate[] = [
  { label: 'fixed 1M', fixed: MiB },
  { label: '64K/256K/1M', cdc: { min: 64 * KiB, avg: 256 * KiB, max: MiB } },
  { label: '128K/512K/2M', cdc: { min: 128 * KiB, avg: 512 * KiB, max: 2 * MiB } },
  { label: '256K/1M/4M', cdc: { min: 256 * KiB, avg: MiB, max: 4 * MiB } },
  { label: '512K/1M/2M', cdc: { min: 512 * KiB, avg: MiB, max: 2 * MiB } },
  { label: '512K/2M/8M', cdc: { min: 512 * KiB, avg: 2 * MiB, max: 8 * MiB } }
]

/** Reproducible random bytes: AES-256-CTR of zeros under a fixed key. */
function randomFile (size: number, label: string): Buffer {
  const key = createHash('sha256').update(label).digest()
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size))
}

/** A file as a sequence of byte ranges, streamed in socket-sized pieces without building the edited copy. */
async function * stream (parts: Buffer[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) {
    for (let o = 0; o < part.length; o += PIECE) yield part.subarray(o, Math.min(part.length, o + PIECE))
  }
}

async function * chunksOf (c: Candidate, parts: Buffer[]): AsyncGenerator<Uint8Array> {
  const source = stream(parts)
  const gen = 'fixed' in c ? chunkStream(source, c.fixed) : cdcChunks(source, c.cdc)
  for await (const chunk of gen) yield chunk.bytes
}

async function timeChunking (c: Candidate, parts: Buffer[]): Promise<{ seconds: number, count: number }> {
  const start = performance.now()
  let count = 0
  for await (const bytes of chunksOf(c, parts)) count += bytes.length > 0 ? 1 : 0
  return { seconds: (performance.now() - start) / 1000, count }
}

async function digests (c: Candidate, parts: Buffer[]): Promise<Array<{ hash: string, bytes: number }>> {
  const out: Array<{ hash: string, bytes: number }> = []
  for await (const bytes of chunksOf(c, parts)) out.push({ hash: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length })
  return out
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

const original = randomFile(SIZE, 'cdc-sizes original')
const inserted = randomFile(4 * KiB, 'cdc-sizes insert')
const patch = randomFile(MiB, 'cdc-sizes patch')
const middle = Math.floor(SIZE / 2)
const edits: Record<string, Buffer[]> = {
  'insert 4 KiB at start': [inserted, original],
  'overwrite 1 MiB in middle': [original.subarray(0, middle), patch, original.subarray(middle + MiB)]
}

for (const c of CANDIDATES) {
  const runs: number[] = []
  let count = 0
  for (let r = 0; r < RUNS; r++) {
    const t = await timeChunking(c, [original])
    runs.push(SIZE / MiB / t.seconds)
    count = t.count
  }
  const known = new Set((await digests(c, [original])).map(d => d.hash))
  const edited: Record<string, { chunks: number, shared: number, newMiB: number }> = {}
  for (const [name, parts] of Object.entries(edits)) {
    const ds = await digests(c, parts)
    const fresh = ds.filter(d => !known.has(d.hash))
    edited[name] = {
      chunks: ds.length,
      shared: Number(((ds.length - fresh.length) / ds.length).toFixed(4)),
      newMiB: Number((fresh.reduce((s, d) => s + d.bytes, 0) / MiB).toFixed(2))
    }
  }
  console.log(JSON.stringify({
    bench: 'cdc-sizes',
    sizes: c.label,
    fileMiB: SIZE / MiB,
    chunks: count,
    meanKiB: Math.round(SIZE / count / KiB),
    mibPerSecond: { median: Math.round(median(runs)), min: Math.round(Math.min(...runs)), max: Math.round(Math.max(...runs)) },
    edits: edited
  }))
}
