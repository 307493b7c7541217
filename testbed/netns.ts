/**
 * Hosts made of Linux network namespaces, for the testbed and the
 * `aggregate-hosts` benchmark. Each host is a namespace with one interface,
 * `eth0`, and its own address; all of them hang off a bridge that lives in a
 * namespace of its own (the "hub"), so the machine's own namespace gets no
 * interface, no address and no route: the subnet exists only inside these
 * namespaces. A host's link can be shaped by the kernel (tc tbf, both
 * directions), the way a real uplink is.
 *
 * Every namespace is named `<prefix><pid>-<host>`: a run cleans up after
 * itself, and one that was killed too hard to do so is swept by the next
 * (its pid is gone).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { CdnError } from '../core/errors.ts'

export const PREFIX = 'cdntb'

export class TestbedError extends CdnError {
  constructor (message: string, options?: ErrorOptions) { super(message, 'ERR_TESTBED', 500, options) }
}

export interface HostSpec {
  name: string
  /** the last octet of its address in the subnet */
  octet: number
  /** bytes/s the kernel lets through this host's link, each way; undefined = unshaped */
  rate?: number
}

export interface RunResult { code: number | null, stdout: string, stderr: string }

/** Runs a command to completion (no shell), failing with its stderr unless `allowFail`. */
export async function sh (argv: string[], opts: { allowFail?: boolean, env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<RunResult> {
  return await new Promise((resolve, reject) => {
    const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env })
    let stdout = ''
    let stderr = ''
    const timer = setTimeout(() => { proc.kill('SIGKILL') }, opts.timeoutMs ?? 120_000)
    proc.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    proc.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    proc.once('error', (err) => { clearTimeout(timer); reject(new TestbedError(`cannot run ${argv[0]}: ${err.message}`, { cause: err })) })
    proc.once('close', (code) => {
      clearTimeout(timer)
      if (code !== 0 && opts.allowFail !== true) reject(new TestbedError(`${argv.join(' ')} exited ${String(code)}: ${stderr.trim().slice(-400)}`))
      else resolve({ code, stdout, stderr })
    })
  })
}

export class Testbed {
  readonly subnet: string
  private readonly tag: string
  private readonly hosts = new Map<string, HostSpec>()
  private readonly children = new Set<ChildProcess>()
  private destroyed = false

  private constructor (tag: string, subnet: string) {
    this.tag = tag
    this.subnet = subnet
  }

  get hub (): string { return `${this.tag}-hub` }

  /** Namespace name of a host. */
  ns (host: string): string {
    if (!this.hosts.has(host)) throw new TestbedError(`no host ${host} in this testbed`)
    return `${this.tag}-${host}`
  }

  address (host: string): string {
    const h = this.hosts.get(host)
    if (h == null) throw new TestbedError(`no host ${host} in this testbed`)
    return `${this.subnet}.${h.octet}`
  }

  /**
   * Builds the hub and the hosts. On any failure what was built is torn
   * down before the error is thrown.
   */
  static async create (hosts: HostSpec[], opts: { subnet?: string } = {}): Promise<Testbed> {
    if (process.getuid?.() !== 0) throw new TestbedError('the testbed needs root: it creates network namespaces (run it as root, as CI does)')
    await sweepStale()
    const bed = new Testbed(`${PREFIX}${process.pid}`, opts.subnet ?? '10.77.0')
    try {
      await sh(['ip', 'netns', 'add', bed.hub])
      await sh(['ip', '-n', bed.hub, 'link', 'add', 'br0', 'type', 'bridge'])
      await sh(['ip', '-n', bed.hub, 'link', 'set', 'br0', 'up'])
      await sh(['ip', '-n', bed.hub, 'link', 'set', 'lo', 'up'])
      for (const h of hosts) await bed.addHost(h)
      return bed
    } catch (err) {
      await bed.destroy()
      throw err
    }
  }

  /** One more host on the bridge (also after the start: a server joining later). */
  async addHost (h: HostSpec): Promise<void> {
    if (!/^[a-z][a-z0-9]{0,11}$/.test(h.name)) throw new TestbedError(`host name "${h.name}" must be 1-12 lowercase letters and digits`)
    this.hosts.set(h.name, h)
    const ns = this.ns(h.name)
    const peer = `h-${h.name}`
    await sh(['ip', 'netns', 'add', ns])
    await sh(['ip', 'link', 'add', 'eth0', 'netns', ns, 'type', 'veth', 'peer', 'name', peer, 'netns', this.hub])
    await sh(['ip', '-n', this.hub, 'link', 'set', peer, 'master', 'br0'])
    await sh(['ip', '-n', this.hub, 'link', 'set', peer, 'up'])
    await sh(['ip', '-n', ns, 'addr', 'add', `${this.address(h.name)}/24`, 'dev', 'eth0'])
    await sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up'])
    await sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    if (h.rate != null) {
      // Both directions: the host's uplink (its eth0) and its downlink (the hub's end of the pair).
      await shape(['ip', 'netns', 'exec', ns], 'eth0', h.rate)
      await shape(['ip', 'netns', 'exec', this.hub], peer, h.rate)
    }
  }

  /** `ip netns exec <ns> argv…`, its stdout piped, its stderr into `logFile`. */
  spawn (host: string, argv: string[], opts: { env?: Record<string, string>, logFile: string }): ChildProcess {
    const log = createWriteStream(opts.logFile, { flags: 'a' })
    const proc = spawn('ip', ['netns', 'exec', this.ns(host), ...argv], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } })
    proc.stderr!.pipe(log)
    this.children.add(proc)
    proc.once('exit', () => { this.children.delete(proc) })
    return proc
  }

  /** Runs a command on a host to completion. */
  async run (host: string, argv: string[], opts: { env?: Record<string, string>, allowFail?: boolean, timeoutMs?: number } = {}): Promise<RunResult> {
    return await sh(['ip', 'netns', 'exec', this.ns(host), ...argv], { env: { ...process.env, ...opts.env }, allowFail: opts.allowFail, timeoutMs: opts.timeoutMs })
  }

  /** The host "loses power": every process in its namespace gets SIGKILL. Resolves with how many there were. */
  async killHost (host: string): Promise<number> {
    return await killNamespace(this.ns(host))
  }

  /** Kills every process of every host and deletes every namespace. Safe to call twice. */
  async destroy (): Promise<void> {
    if (this.destroyed) return
    this.destroyed = true
    for (const proc of this.children) proc.kill('SIGKILL')
    await removeNamespaces(name => name.startsWith(`${this.tag}-`))
  }
}

async function shape (inNs: string[], dev: string, bytesPerSecond: number): Promise<void> {
  const bits = Math.round(bytesPerSecond * 8)
  // A burst of 256 KiB covers veth's segmentation-offload super-packets; the queue holds 200 ms.
  await sh([...inNs, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${bits}bit`, 'burst', '256kb', 'latency', '200ms'])
}

async function namespaces (): Promise<string[]> {
  const r = await sh(['ip', 'netns', 'list'], { allowFail: true })
  return r.stdout.split('\n').map(l => l.trim().split(/\s+/)[0]).filter(n => n != null && n !== '')
}

async function killNamespace (ns: string): Promise<number> {
  let killed = 0
  for (let round = 0; round < 50; round++) {
    const r = await sh(['ip', 'netns', 'pids', ns], { allowFail: true })
    const pids = r.stdout.split('\n').map(Number).filter(p => Number.isSafeInteger(p) && p > 0)
    if (pids.length === 0) return killed
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
        if (round === 0) killed++
      } catch {
        // Already gone.
      }
    }
    await sleep(100)
  }
  throw new TestbedError(`processes in ${ns} survived SIGKILL for 5 s`)
}

async function removeNamespaces (match: (name: string) => boolean): Promise<void> {
  const ours = (await namespaces()).filter(match)
  // Processes first (a namespace with processes in it would linger after `ip netns del`), the hub last.
  for (const ns of ours) await killNamespace(ns)
  for (const ns of ours.sort((a, b) => Number(a.endsWith('-hub')) - Number(b.endsWith('-hub')))) {
    await sh(['ip', 'netns', 'del', ns], { allowFail: true })
  }
}

/** Deletes the namespaces of earlier runs whose process is gone (killed with SIGKILL, say). */
export async function sweepStale (): Promise<string[]> {
  const stale = new Set<string>()
  for (const name of await namespaces()) {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name)
    if (m == null || Number(m[1]) === process.pid) continue
    if (!alive(Number(m[1]))) stale.add(name)
  }
  if (stale.size > 0) await removeNamespaces(n => stale.has(n))
  return [...stale]
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err: any) {
    return err?.code === 'EPERM'
  }
}
