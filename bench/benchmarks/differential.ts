/**
 * Differential publish: a 1 GiB random file published under a name, then
 * four edits of it, each as the name's next generation: 1 MiB overwritten
 * in the middle, 4 KiB inserted at the start, 10 MiB appended, no change.
 * Per edit: the bytes the publisher uploaded (the manager's
 * `cdn_manager_upload_bytes_total`: the plan of chunk hashes and the chunks
 * the name lacked), the bytes newly stored in the pool (the
 * growth of the nodes' blob directories, all copies, and per copy), and the
 * publish time. `restic backup` of the same files into one repository is the
 * anchor: its `data_added` per edit beside ours.
 *
 * The target (issue 13): uploaded ≤ the edit + 3 average chunks, and ≤ 1% of
 * the file for no change.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { copyFile, mkdir, open, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { formatBytes } from '../../core/units.ts'
import { CdnNetwork, runCli } from '../cdn-network.ts'
import { GiB, MiB, type Benchmark } from '../context.ts'
import { requireFreeDisk } from '../files.ts'
import { round } from '../stats.ts'

const NODES = 4
const REPLICAS = 3
/** The manager's content-defined chunking average (core/cdc-chunker.ts defaults). */
const AVERAGE_CHUNK = MiB

interface Edit {
  name: string
  /** bytes the edit changes or adds */
  bytes: number
  apply: (base: string, out: string, size: number) => Promise<void>
}

const EDITS: Edit[] = [
  { name: '1 MiB overwritten in the middle', bytes: MiB, apply: async (base, out, size) => { await copyFile(base, out); await writeAt(out, Math.floor(size / 2), MiB) } },
  { name: '4 KiB inserted at the start', bytes: 4096, apply: async (base, out) => { await prepend(base, out, 4096) } },
  { name: '10 MiB appended', bytes: 10 * MiB, apply: async (base, out, size) => { await copyFile(base, out); await writeAt(out, size, 10 * MiB) } },
  { name: 'no change', bytes: 0, apply: async (base, out) => { await copyFile(base, out) } }
]

export const differential: Benchmark = {
  name: 'differential',
  about: `a 1 GiB file under a name, then 4 edits as new generations (R=${REPLICAS}, ${NODES} nodes): bytes uploaded, bytes newly stored, time; restic backup of the same edits beside it`,
  async run (ctx) {
    const size = ctx.size(GiB)
    await requireFreeDisk(ctx.workDir, size * (REPLICAS * (EDITS.length + 1) + EDITS.length + 3), 'the differential benchmark')
    const base = (await ctx.file('differential-base', size)).path
    const files = [{ edit: 'first publish', bytes: size, path: base }]
    for (const [i, e] of EDITS.entries()) {
      const path = join(ctx.workDir, `edit-${i}.bin`)
      await e.apply(base, path, size)
      files.push({ edit: e.name, bytes: e.bytes, path })
    }
    const ours = await publishGenerations(ctx, files.map(f => f.path))
    const restic = await resticBackups(ctx, files.map(f => f.path))
    for (const [i, f] of files.entries()) {
      const row = {
        system: 'ours',
        edit: f.edit,
        size: (await stat(f.path)).size,
        editBytes: f.bytes,
        targetUploadBytes: i === 0 ? null : f.bytes === 0 ? Math.floor(size / 100) : f.bytes + 3 * AVERAGE_CHUNK,
        uploadedBytes: ours[i].uploaded,
        storedBytesAllCopies: ours[i].stored,
        storedBytesPerCopy: Math.round(ours[i].stored / REPLICAS),
        seconds: round(ours[i].seconds),
        chunks: ours[i].chunks,
        reusedChunks: ours[i].reusedChunks,
        restic: restic[i]
      }
      ctx.log(`${f.edit}: uploaded ${formatBytes(row.uploadedBytes)}, stored ${formatBytes(row.storedBytesPerCopy)} per copy, ${row.seconds} s; restic added ${restic[i] == null ? 'n/a' : formatBytes(restic[i]!.addedBytes)}`)
      ctx.sink.emit(row)
    }
  }
}

async function publishGenerations (ctx: Parameters<Benchmark['run']>[0], paths: string[]): Promise<Array<{ uploaded: number, stored: number, seconds: number, reusedChunks: number, chunks: number }>> {
  const net = await CdnNetwork.start({ dir: join(ctx.workDir, 'net'), nodes: Array.from({ length: NODES }, () => ({ egress: 'unlimited' })) })
  try {
    const out = []
    for (const path of paths) {
      const [sent0, disk0] = [await uploadCounter(net), await blobBytes(ctx.workDir)]
      const t0 = performance.now()
      const stdout = await runCli(['publish', path, '--manager', net.managerUrl, '--replicas', String(REPLICAS), '--name', 'bench/differential.bin', '--chunking', 'cdc', '--json'], ctx.signal, { CDN_TOKEN: net.token })
      const seconds = (performance.now() - t0) / 1000
      const result = JSON.parse(stdout) as { chunks: number, reusedChunks?: number }
      out.push({ uploaded: await uploadCounter(net) - sent0, stored: await blobBytes(ctx.workDir) - disk0, seconds, reusedChunks: result.reusedChunks ?? 0, chunks: result.chunks })
    }
    return out
  } finally {
    await net.stop()
  }
}

async function uploadCounter (net: CdnNetwork): Promise<number> {
  const text = await (await fetch(`${net.managerUrl}/metrics`)).text()
  const line = text.split('\n').find(l => l.startsWith('cdn_manager_upload_bytes_total'))
  return Number(line?.split(' ').at(-1) ?? 0)
}

/** Bytes of every blob file under the nodes' data directories. */
async function blobBytes (dir: string): Promise<number> {
  let total = 0
  for (const entry of await readdir(join(dir, 'net'), { withFileTypes: true })) {
    if (entry.isDirectory() && entry.name.startsWith('node-')) total += await treeBytes(join(dir, 'net', entry.name, 'blobs'))
  }
  return total
}

async function treeBytes (dir: string): Promise<number> {
  let total = 0
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) total += await treeBytes(p)
    else if (e.isFile()) total += (await stat(p)).size
  }
  return total
}

/** `restic backup` of each file in turn into one repository (same path, as a publisher's file would be); `data_added` per backup. */
async function resticBackups (ctx: Parameters<Benchmark['run']>[0], paths: string[]): Promise<Array<{ addedBytes: number, seconds: number } | null>> {
  const repo = join(ctx.workDir, 'restic-repo')
  const staged = join(ctx.workDir, 'restic-src')
  await mkdir(staged, { recursive: true })
  // A throwaway repository's password, by environment (never argv).
  const env = { ...process.env, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD: 'bench-only', RESTIC_CACHE_DIR: join(ctx.workDir, 'restic-cache') }
  try {
    await run('restic', ['init'], env)
  } catch (err) {
    ctx.log(`restic is not usable (${String(err)}); apt-get install restic for the anchor`)
    return paths.map(() => null)
  }
  const out = []
  for (const p of paths) {
    await copyFile(p, join(staged, 'file.bin'))
    const t0 = performance.now()
    const stdout = await run('restic', ['backup', '--json', staged], env)
    const summary = stdout.split('\n').filter(l => l.includes('"message_type":"summary"')).map(l => JSON.parse(l)).at(-1)
    out.push({ addedBytes: Number(summary?.data_added ?? NaN), seconds: round((performance.now() - t0) / 1000) })
  }
  return out
}

async function run (cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return await new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    p.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    p.on('error', reject)
    p.on('close', code => { code === 0 ? resolve(stdout) : reject(new Error(`${cmd} ${args[0]} exited ${code}: ${stderr.slice(0, 300)}`)) })
  })
}

/** Overwrites `length` bytes at `at` (extending the file when past its end) with fresh random bytes. */
async function writeAt (path: string, at: number, length: number): Promise<void> {
  const fh = await open(path, 'r+')
  try {
    await fh.write(randomBytes(length), 0, length, at)
  } finally {
    await fh.close()
  }
}

/** `out` = `length` random bytes, then all of `base`. */
async function prepend (base: string, out: string, length: number): Promise<void> {
  const w = createWriteStream(out)
  w.write(randomBytes(length))
  await pipeline(createReadStream(base), w)
}
