/**
 * Shared by the integration tests: a real local network (`cdn up` as a child
 * process, every role its own process on loopback) and the `cdn` command run
 * the way a user runs it.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

export const CDN = join(import.meta.dirname, '..', '..', 'cli', 'cdn.ts')

export interface NetworkNode { peerId: string, http: string, pid: number, multiaddrs: string[], data: string }
export interface Network {
  manager: string
  managerMultiaddr: string
  managerPid: number
  proxy: string
  proxyPid: number
  token: string
  joinToken: string
  dir: string
  nodes: NetworkNode[]
  proc: ChildProcess
  stop (): Promise<void>
}

export async function tempDir (label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `cdn-${label}-`))
}

/** `cdn up --json` with ephemeral ports; resolves once the pool is ready. */
export async function startNetwork (opts: { nodes?: number, extra?: string[] } = {}): Promise<Network> {
  const dir = await tempDir('net')
  const args = [CDN, 'up', '--json', '--nodes', String(opts.nodes ?? 4), '--dir', dir, '--manager-port', '0', '--proxy-port', '0', ...(opts.extra ?? [])]
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CDN_LOG_LEVEL: process.env.CDN_LOG_LEVEL ?? 'info' } })
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! })
    rl.once('line', resolve)
    proc.once('exit', (code) => { reject(new Error(`cdn up exited with ${code} before it was ready (logs in ${dir}/logs)`)) })
  })
  const summary = JSON.parse(line)
  return {
    ...summary,
    proc,
    async stop () {
      if (proc.exitCode == null) {
        const exited = new Promise(resolve => proc.once('exit', resolve))
        proc.kill('SIGTERM')
        await exited
      }
      await rm(dir, { recursive: true, force: true })
    }
  }
}

export interface RunResult { code: number | null, stdout: string, stderr: string }

/** Runs `cdn …` to completion. */
export async function cdn (args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CDN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    proc.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    proc.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    proc.on('close', (code) => { resolve({ code, stdout, stderr }) })
  })
}

/** Runs `cdn … --json` and parses its one line, failing loudly with its stderr otherwise. */
export async function cdnJson (args: string[]): Promise<any> {
  const r = await cdn([...args, '--json'])
  if (r.code !== 0) throw new Error(`cdn ${args.join(' ')} exited ${r.code}: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!)
}

/** Writes `size` random bytes, generated in pieces so memory stays small. */
export async function randomFile (dir: string, name: string, size: number): Promise<string> {
  const path = join(dir, name)
  const piece = 4 * 1024 * 1024
  const parts: Buffer[] = []
  for (let done = 0; done < size; done += piece) parts.push(randomBytes(Math.min(piece, size - done)))
  await writeFile(path, Buffer.concat(parts))
  return path
}

export async function sha256File (path: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const piece of createReadStream(path)) hash.update(piece as Buffer)
  return hash.digest('hex')
}

/** Every file under a node's blob directory, by name (blob files are named by their id). */
export async function blobFiles (dataDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const walk = async (d: string): Promise<void> => {
    let entries
    try {
      entries = await readdir(d, { withFileTypes: true })
    } catch (err: any) {
      if (err.code === 'ENOENT') return
      throw err
    }
    for (const e of entries) {
      const p = join(d, e.name)
      if (e.isDirectory()) await walk(p)
      else if (!e.name.includes('.tmp')) out.set(e.name, p)
    }
  }
  await walk(join(dataDir, 'blobs'))
  return out
}

export async function fileSize (path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch {
    return 0
  }
}

/** Polls `check` until it returns true or `timeout` ms pass; behaviour, not timing, is what tests assert. */
export async function eventually (what: string, check: () => Promise<boolean>, timeout = 30_000, every = 200): Promise<void> {
  const deadline = Date.now() + timeout
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise(resolve => setTimeout(resolve, every))
  }
}

export async function getJson (url: string): Promise<any> {
  const res = await fetch(url)
  return { status: res.status, body: await res.json() }
}
