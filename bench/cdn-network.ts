/**
 * Our CDN as a benchmark drives it: a manager, each node and the proxy as
 * separate processes (`cli/cdn.ts <role> start --json`), started here rather
 * than through `cdn up` so that every process's pid is known (for its memory),
 * nodes can have different egress caps, one can be added or frozen, and the
 * proxy can be restarted cold.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { TimeoutError, UpstreamError } from '../core/errors.ts'
import { profileFlags, startChild, stopAll, type Child } from './child.ts'
import { processCpuMs } from './cpu.ts'
import { download } from './download.ts'
import { makeRandomFile } from './files.ts'

export const CDN = join(import.meta.dirname, '..', 'cli', 'cdn.ts')

const PROBE_BYTES = 64 * 1024

export interface NodeSpec {
  /** `--max-egress`, e.g. `25MB/s` or `unlimited` */
  egress: string
}

export interface CdnNetworkInit {
  /** working directory for data and logs; stop() removes the data */
  dir: string
  nodes: NodeSpec[]
  /** `--capacity` of each node (default 50GB) */
  capacity?: string
}

export interface PublishOutcome {
  id: string
  size: number
  chunks: number
  replicas: number
  /** wall seconds of `cdn publish`, process start to exit */
  seconds: number
  /** CPU ms the `cdn publish` process used (sampled from /proc until it exits, so at most ~50 ms short) */
  cliCpuMs: number
}

export class CdnNetwork {
  readonly dir: string
  readonly token = randomBytes(18).toString('base64url')
  readonly joinToken = randomBytes(18).toString('base64url')
  /** written by the manager's first start into its data directory */
  adminToken = ''
  manager!: Child
  /** in start order; a slot stays empty while its node is starting */
  private readonly slots: Array<Child | undefined> = []
  proxy: Child | undefined
  private readonly capacity: string
  private proxyRuns = 0
  private probeId: string | undefined

  private constructor (dir: string, capacity: string) {
    this.dir = dir
    this.capacity = capacity
  }

  /** Starts the manager, then the nodes, waits until all joined, then the proxy. */
  static async start (init: CdnNetworkInit): Promise<CdnNetwork> {
    await mkdir(init.dir, { recursive: true })
    const net = new CdnNetwork(init.dir, init.capacity ?? '50GB')
    try {
      net.manager = await startChild({
        role: 'manager',
        args: [CDN, 'manager', 'start', '--json', '--dir', join(init.dir, 'manager'), '--http-port', '0', '--p2p-port', '0', '--max-upload', '64GiB'],
        logFile: join(init.dir, 'logs', 'manager.log'),
        // Secrets by environment: argv is visible to every user of the machine.
        env: { CDN_PUBLISHER_TOKENS: net.token, CDN_JOIN_TOKENS: net.joinToken }
      })
      net.adminToken = (await readFile(join(init.dir, 'manager', 'admin.token'), 'utf8')).trim()
      await Promise.all(init.nodes.map(async spec => { await net.addNode(spec, false) }))
      await net.waitForNodes(init.nodes.length)
      await net.restartProxy()
      return net
    } catch (err) {
      await net.stop()
      throw err
    }
  }

  get nodes (): Child[] { return this.slots.filter((c): c is Child => c != null) }
  get managerUrl (): string { return String(this.manager.info.http) }
  get managerMultiaddr (): string { return String(this.manager.info.multiaddrs[0]) }
  get proxyUrl (): string {
    if (this.proxy == null) throw new UpstreamError('the proxy is not running')
    return String(this.proxy.info.http)
  }

  /** Starts one more node (e.g. a slow one) and, unless told not to, waits until the manager counts it alive. */
  async addNode (spec: NodeSpec, wait = true): Promise<Child> {
    const i = this.slots.push(undefined) - 1
    const child = await startChild({
      role: `node-${i}`,
      args: [CDN, 'node', 'start', '--json', '--manager', this.managerMultiaddr,
        '--data', join(this.dir, `node-${i}`), '--capacity', this.capacity, '--max-egress', spec.egress],
      logFile: join(this.dir, 'logs', `node-${i}.log`),
      env: { CDN_JOIN_TOKEN: this.joinToken }
    })
    this.slots[i] = child
    if (wait) await this.waitForNodes(this.slots.length)
    return child
  }

  async waitForNodes (count: number, timeout = 60_000): Promise<void> {
    const deadline = Date.now() + timeout
    let last = 'no answer yet'
    for (;;) {
      const res = await fetch(`${this.managerUrl}/api/nodes`, { headers: { authorization: `Bearer ${this.adminToken}` }, signal: AbortSignal.timeout(10_000) })
      const body = await res.json() as { nodes?: Array<{ state: string }> }
      // A manager still starting may answer with an error; that is a "not yet", not a failure.
      const alive = Array.isArray(body.nodes) ? body.nodes.filter(n => n.state === 'alive').length : 0
      last = Array.isArray(body.nodes) ? `${alive} of ${count} nodes alive` : `GET /api/nodes answered ${res.status}: ${JSON.stringify(body).slice(0, 200)}`
      if (alive >= count) return
      if (Date.now() > deadline) throw new TimeoutError(`the pool was not ready within ${timeout} ms: ${last}`)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
  }

  /**
   * A new proxy process in a fresh working directory: nothing it resolved or
   * cached before survives, so every measurement starts from the same state.
   */
  async restartProxy (): Promise<Child> {
    if (this.proxy != null) await this.proxy.stop()
    this.proxy = undefined
    const run = this.proxyRuns++
    const cwd = await mkdtemp(join(this.dir, `proxy-${run}-`))
    this.proxy = await startChild({
      role: 'proxy',
      args: [CDN, 'proxy', 'start', '--json', '--manager', this.managerUrl, '--port', '0'],
      logFile: join(this.dir, 'logs', `proxy-${run}.log`),
      cwd,
      env: { HOME: cwd, XDG_CACHE_HOME: join(cwd, 'cache') }
    })
    return this.proxy
  }

  /**
   * A proxy as a viewer's would be when a new content is asked for: freshly
   * started (nothing resolved, nothing cached), but already part of the DHT and
   * linked to the manager, which a request for a tiny probe content ensures.
   */
  async freshProxy (signal?: AbortSignal): Promise<void> {
    await this.restartProxy()
    if (this.probeId == null) {
      const file = join(this.dir, 'probe.bin')
      await makeRandomFile(file, PROBE_BYTES)
      this.probeId = (await this.publish(file, 1, signal)).id
    }
    await download(`${this.proxyUrl}/c/${this.probeId}`, { expectBytes: PROBE_BYTES, signal, timeout: 60_000 })
  }

  /** `cdn publish FILE --replicas R --json`, as a publisher runs it. */
  async publish (file: string, replicas: number, signal?: AbortSignal): Promise<PublishOutcome> {
    const t0 = performance.now()
    let cliCpuMs = 0
    let sampler: NodeJS.Timeout | undefined
    const out = await runCli(['publish', file, '--manager', this.managerUrl, '--replicas', String(replicas), '--json'], signal, { CDN_TOKEN: this.token }, (pid) => {
      sampler = setInterval(() => { processCpuMs(pid).then(ms => { if (ms != null) cliCpuMs = ms }, () => {}) }, 50)
    }).finally(() => { clearInterval(sampler) })
    const seconds = (performance.now() - t0) / 1000
    const r = JSON.parse(out.trim().split('\n').at(-1) ?? '{}')
    return { id: String(r.id), size: Number(r.size), chunks: Number(r.chunks), replicas: Number(r.replicas), seconds, cliCpuMs }
  }

  /** `cdn rm ID`: frees the nodes' disks between large publishes. */
  async remove (id: string, signal?: AbortSignal): Promise<void> {
    await runCli(['rm', id, '--manager', this.managerUrl, '--json'], signal, { CDN_TOKEN: this.token })
  }

  /**
   * Stops the proxy, the nodes, then the manager, and frees their disk; the
   * logs stay (the runner removes the whole work directory unless --keep).
   */
  async stop (): Promise<void> {
    const children = [this.manager as Child | undefined, ...this.slots, this.proxy].filter((c): c is Child => c != null)
    await stopAll(children)
    for (const entry of await readdir(this.dir)) {
      if (entry !== 'logs') await rm(join(this.dir, entry), { recursive: true, force: true })
    }
  }
}

/** Runs `cdn …` to completion and returns its stdout, failing with its stderr. */
export async function runCli (args: string[], signal?: AbortSignal, env: Record<string, string> = {}, onSpawn?: (pid: number) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...profileFlags('cli'), CDN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], signal, env: { ...process.env, CDN_LOG_LEVEL: 'warn', ...env } })
    if (proc.pid != null) onSpawn?.(proc.pid)
    let stdout = ''
    let stderr = ''
    proc.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    proc.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    proc.once('error', reject)
    proc.once('close', (code) => {
      if (code === 0) resolve(stdout)
      else reject(new UpstreamError(`cdn ${args.slice(0, 2).join(' ')} exited ${String(code)}: ${stderr.trim().slice(-500)}`))
    })
  })
}
