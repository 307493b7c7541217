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
  /** every manager of the pool (`cdn up --managers N`); the first is `manager` */
  managers: Array<{ url: string, pid: number, multiaddr: string }>
  proxy: string
  proxyPid: number
  /** a publisher token, and a file holding it (`--token-file`) */
  token: string
  tokenFile: string
  /** the admin token the manager's first start wrote, and its file */
  adminToken: string
  adminTokenFile: string
  joinToken: string
  dir: string
  nodes: NetworkNode[]
  proc: ChildProcess
  /** stops every process; the data directory goes too unless `keepDir` */
  stop (opts?: { keepDir?: boolean }): Promise<void>
}

export async function tempDir (label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `cdn-${label}-`))
}

/**
 * `cdn up --json` with ephemeral ports; resolves once the pool is ready.
 * `dir` starts again on a network's data (stopped with keepDir); `env` is
 * given to every process (e.g. CDN_DATABASE_URL for the manager's catalog).
 */
export async function startNetwork (opts: { nodes?: number, extra?: string[], dir?: string, env?: Record<string, string> } = {}): Promise<Network> {
  const dir = opts.dir ?? await tempDir('net')
  // Tests kill children on purpose: `cdn up` must not bring them back.
  const args = [CDN, 'up', '--json', '--nodes', String(opts.nodes ?? 4), '--dir', dir, '--manager-port', '0', '--proxy-port', '0', '--no-restart', ...(opts.extra ?? [])]
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CDN_LOG_LEVEL: process.env.CDN_LOG_LEVEL ?? 'info', ...opts.env } })
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! })
    rl.once('line', resolve)
    proc.once('exit', (code) => { reject(new Error(`cdn up exited with ${code} before it was ready (logs in ${dir}/logs)`)) })
  })
  const summary = JSON.parse(line)
  const tokenFile = join(dir, 'publisher.token')
  await writeFile(tokenFile, `${summary.token}\n`, { mode: 0o600 })
  return {
    ...summary,
    tokenFile,
    adminTokenFile: join(dir, 'manager', 'admin.token'),
    proc,
    async stop (o = {}) {
      if (proc.exitCode == null) {
        const exited = new Promise(resolve => proc.once('exit', resolve))
        proc.kill('SIGTERM')
        await exited
      }
      if (o.keepDir !== true) await rm(dir, { recursive: true, force: true })
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
export async function cdnJson (args: string[], env: Record<string, string> = {}): Promise<any> {
  const r = await cdn([...args, '--json'], env)
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
export interface HotLoad {
  /** stops the viewers and says how many downloads ran and which failed */
  stop (): Promise<{ downloads: number, failures: string[] }>
}

/**
 * `viewers` clients downloading `id` through the proxy again and again, until
 * stopped; with `sha256`, a body of other bytes counts as a failure too.
 */
export function hotLoad (proxy: string, id: string, viewers = 6, sha256?: string): HotLoad {
  let running = true
  let downloads = 0
  const failures: string[] = []
  const viewer = async (): Promise<void> => {
    while (running) {
      try {
        const res = await fetch(`${proxy}/c/${id}`, { signal: AbortSignal.timeout(60_000) })
        const body = Buffer.from(await res.arrayBuffer())
        if (res.status !== 200 || (sha256 != null && createHash('sha256').update(body).digest('hex') !== sha256)) failures.push(`${res.status}, ${body.length} bytes`)
        downloads++
      } catch (err) {
        failures.push(String(err))
      }
    }
  }
  const all = Array.from({ length: viewers }, viewer)
  return {
    async stop () {
      running = false
      await Promise.all(all)
      return { downloads, failures }
    }
  }
}

export async function eventually (what: string, check: () => Promise<boolean>, timeout = 30_000, every = 200): Promise<void> {
  const deadline = Date.now() + timeout
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`)
    await new Promise(resolve => setTimeout(resolve, every))
  }
}

/** GET a JSON answer, with a bearer token when given. */
export async function getJson (url: string, token?: string): Promise<any> {
  const res = await fetch(url, token != null ? { headers: { authorization: `Bearer ${token}` } } : {})
  return { status: res.status, body: await res.json() }
}

// ---- the adaptive pool (pool-*.test.ts) ------------------------------------

/**
 * The invariant watcher that runs beside every pool scenario: polls the
 * manager's replication summary (confirmed copies on live nodes of every
 * chunk of every visible content) and remembers every sample below the
 * minimum. `stop()` ends the polling and says what it saw.
 */
export interface ReplicationWatch {
  stop (): Promise<{ samples: number, violations: string[], lowest: number | null }>
}

export function watchReplication (manager: string | string[], token: string, everyMs = 100): ReplicationWatch {
  let stopped = false
  let samples = 0
  let lowest: number | null = null
  const violations: string[] = []
  const managers = typeof manager === 'string' ? [manager] : manager
  // Several managers share one catalog: any of them answers for the pool, so a killed one is skipped.
  const read = async (): Promise<any> => {
    const errors: string[] = []
    for (const m of managers) {
      try {
        const res = await fetch(`${m}/api/health/replication`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) })
        return await res.json()
      } catch (err) {
        errors.push(`${m}: ${String(err)}`)
      }
    }
    throw new Error(errors.join('; '))
  }
  const loop = (async () => {
    while (!stopped) {
      try {
        const body = await read()
        samples++
        if (body.lowest != null) lowest = lowest == null ? body.lowest : Math.min(lowest, body.lowest)
        if (body.belowMin > 0) violations.push(`${new Date().toISOString()}: ${body.belowMin} chunks below ${body.minCopies} copies (lowest ${body.lowest})`)
      } catch (err) {
        // The manager being slow for a moment is not a broken invariant; a stopped one ends the test anyway.
        if (!stopped) violations.push(`watcher could not read any manager: ${String(err)}`)
      }
      await new Promise(resolve => setTimeout(resolve, everyMs))
    }
  })()
  return {
    async stop () {
      stopped = true
      await loop
      return { samples, violations, lowest }
    }
  }
}

export interface StartedNode { peerId: string, http: string, pid: number, data: string, proc: ChildProcess, stop (): Promise<void> }

/** `cdn node start` joining an existing network, the way an operator adds a server. */
export async function startNodeProcess (net: Network, opts: { capacity?: string, egress?: string, zone?: string, label?: string } = {}): Promise<StartedNode> {
  const data = join(net.dir, `extra-${opts.label ?? randomBytes(4).toString('hex')}`)
  const args = [CDN, 'node', 'start', '--manager', net.managerMultiaddr, '--data', data,
    '--capacity', opts.capacity ?? '10GB', '--max-egress', opts.egress ?? 'unlimited', '--json', ...(opts.zone != null ? ['--zone', opts.zone] : [])]
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, CDN_JOIN_TOKEN: net.joinToken } })
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! })
    rl.once('line', resolve)
    proc.once('exit', (code) => { reject(new Error(`cdn node start exited with ${code} before it was ready`)) })
  })
  const info = JSON.parse(line)
  return {
    peerId: info.peerId,
    http: info.http,
    pid: proc.pid!,
    data,
    proc,
    async stop () {
      if (proc.exitCode != null || proc.signalCode != null) return
      const exited = new Promise(resolve => proc.once('exit', resolve))
      proc.kill('SIGTERM')
      await exited
    }
  }
}

/** The manager's node list (`GET /api/nodes`). */
export async function poolNodes (manager: string, token: string): Promise<any[]> {
  return (await getJson(`${manager}/api/nodes`, token)).body.nodes
}

/** The manager's visible contents (`GET /api/contents`). */
export async function poolContents (manager: string, token: string): Promise<any[]> {
  return (await getJson(`${manager}/api/contents`, token)).body.contents
}

/** How many of the given disks (node data dirs) hold each blob, counting only files whose bytes match their id. */
export async function copiesOnDisk (dataDirs: string[]): Promise<Map<string, number>> {
  const { parseBlobId, matchesCid } = await import('../../core/ids.ts')
  const { readFile } = await import('node:fs/promises')
  const out = new Map<string, number>()
  for (const dir of dataDirs) {
    for (const [name, path] of await blobFiles(dir)) {
      let ok = false
      try {
        ok = matchesCid(parseBlobId(name), await readFile(path))
      } catch {
        // A blob deleted while we read, or a stray file: not a copy.
      }
      if (ok) out.set(name, (out.get(name) ?? 0) + 1)
    }
  }
  return out
}
