import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { chmod, mkdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { BadInputError, CdnError, TimeoutError } from '../core/errors.ts'
import { writeSecretFile } from '../core/secret-file.ts'
import { startLocalPostgres, stopLocalPostgresNow, type LocalPostgres } from './local-postgres.ts'
import { PortInUseError } from '../core/ports.ts'
import { sizeText } from '../core/units.ts'
import { MANAGER_DEFAULTS } from '../manager/defaults.ts'
import { PROXY_DEFAULTS } from '../proxy/defaults.ts'
import { JOIN_TOKEN_FILE, joinCommand, readManagerAddress } from '../manager/nodes/join-command.ts'
import { callManager } from './manager-api.ts'

const CDN = join(import.meta.dirname, 'cdn.ts')

export interface UpOptions {
  nodes: number
  dir: string
  managerPort: number
  /** the manager's libp2p port; default MANAGER_DEFAULTS.p2pPort, or any free port when managerPort is 0 */
  managerP2pPort?: number
  proxyPort: number
  replicas?: number
  chunkSize?: string
  /** the manager's --chunking: fixed or cdc */
  chunking?: string
  heartbeat?: string
  deadAfter?: string
  nodeCapacity: string
  nodeEgress: string
  proxyCache?: string
  /** replication controller interval, e.g. 500ms */
  reconcile?: string
  moveShare?: number
  minCopies?: number
  maxCopies?: number
  /** failure zones, given to the nodes in turn */
  nodeZones?: string[]
  /** ms to wait for each child's ready line */
  readyTimeout?: number
  /** managers sharing the pool (default 1; more need `postgres`) */
  managers?: number
  /** keep the catalog in a PostgreSQL cluster of our own, in `<dir>/postgres` */
  postgres?: boolean
}

export interface Child {
  role: string
  proc: ChildProcess
  info: Record<string, any>
  /** where its stderr (its log) goes */
  logFile?: string
  /** starts the same child again (same arguments, data and log file, some flags given other values), for the supervisor */
  again: (flags?: Record<string, string>) => Promise<Child>
}

export class ChildExitedError extends CdnError {
  constructor (message: string) { super(message, 'ERR_CHILD_EXITED', 500) }
}

/** A child's own flags that move a port, and the `cdn up` flags that set them. */
export type PortFlags = Partial<Record<'http' | 'p2p', string>>

/**
 * Starts `cdn <args>` as a child, its logs to a file, and resolves with its
 * JSON ready line. A child that fails says why on that line; a taken port
 * becomes a PortInUseError naming `portFlags`' flag, the one the person who
 * started `cdn up` can change.
 */
export async function startChild (role: string, args: string[], logFile: string, timeout = 60_000, opts: { env?: Record<string, string>, portFlags?: PortFlags } = {}): Promise<Child> {
  const log = createWriteStream(logFile, { flags: 'a' })
  // Secrets go through the environment: argv is visible to every user in `ps`.
  const proc = spawn(process.execPath, [CDN, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } })
  proc.stderr!.pipe(log)
  const lines = createInterface({ input: proc.stdout! })
  const info = await new Promise<Record<string, any>>((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new TimeoutError(`${role} was not ready within ${timeout} ms (log: ${logFile})`)) }, timeout)
    const onExit = (code: number | null): void => {
      clearTimeout(timer)
      reject(new ChildExitedError(`${role} exited with code ${code} before it was ready (log: ${logFile})`))
    }
    proc.once('exit', onExit)
    lines.once('line', (line) => {
      clearTimeout(timer)
      proc.off('exit', onExit)
      let info: Record<string, any>
      try {
        info = JSON.parse(line)
      } catch {
        reject(new ChildExitedError(`${role} printed "${line.slice(0, 200)}" instead of its ready line`))
        return
      }
      if (info.ready === false) reject(childFailure(role, info.error ?? {}, logFile, opts.portFlags ?? {}))
      else resolve(info)
    })
  })
  return { role, proc, info, logFile, again: async (flags = {}) => await startChild(role, withFlags(args, flags), logFile, timeout, opts) }
}

function childFailure (role: string, error: Record<string, any>, logFile: string, portFlags: PortFlags): CdnError {
  const flag = portFlags[error.what as 'http' | 'p2p']
  if (error.code === 'ERR_PORT_IN_USE' && typeof error.port === 'number') {
    return new PortInUseError(String(error.what), String(error.host), error.port, flag != null ? { flag } : undefined)
  }
  return new ChildExitedError(`${role} could not start: ${String(error.message ?? 'unknown error')} (log: ${logFile})`)
}

/** SIGTERM every child, then SIGKILL whatever is still alive after `graceMs`. */
export async function stopChildren (children: Child[], graceMs = 10_000): Promise<void> {
  await Promise.all([...children].reverse().map(async ({ proc }) => {
    if (proc.exitCode != null || proc.signalCode != null) return
    const exited = new Promise<void>(resolve => proc.once('exit', () => { resolve() }))
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }))
}

export interface LocalNetwork {
  summary: { manager: string, managerMultiaddr: string, managerPid: number, managers: Array<{ url: string, pid: number, multiaddr: string }>, postgres?: { dir: string }, proxy: string, proxyPid: number, token: string, adminToken: string, joinToken: string, joinTokenFile: string, joinCommand: string, dir: string, nodes: Array<{ peerId: string, http: string, pid: number, multiaddrs: string[], data: string }> }
  children: Child[]
  /** stops what is not a child process (the PostgreSQL cluster), after the children */
  cleanup: () => Promise<void>
}

/** Brings up a manager, N nodes and a proxy as separate processes on loopback. */
export async function startLocalNetwork (o: UpOptions): Promise<LocalNetwork> {
  const logs = join(o.dir, 'logs')
  await mkdir(logs, { recursive: true })
  const token = randomBytes(18).toString('base64url')
  const children: Child[] = []
  const managerDir = join(o.dir, 'manager')
  const p2pPort = o.managerP2pPort ?? (o.managerPort === 0 ? 0 : MANAGER_DEFAULTS.p2pPort)
  const managerCount = o.managers ?? 1
  if (!Number.isSafeInteger(managerCount) || managerCount < 1) throw new BadInputError(`--managers must be a positive integer, got ${managerCount}`)
  if (managerCount > 1 && o.postgres !== true) throw new BadInputError('several managers share one catalog, which must be PostgreSQL: add --postgres')
  let cluster: LocalPostgres | undefined
  const stopCluster = (): void => { if (cluster != null) stopLocalPostgresNow(cluster.dir, 'fast') }
  const cleanup = async (): Promise<void> => {
    process.off('exit', stopCluster)
    await cluster?.stop()
    cluster = undefined
  }
  try {
    const managerArgs = ['manager', 'start', '--http-port', String(o.managerPort), '--p2p-port', String(p2pPort)]
    if (o.replicas != null) managerArgs.push('--replicas', String(o.replicas))
    if (o.chunkSize != null) managerArgs.push('--chunk-size', o.chunkSize)
    if (o.chunking != null) managerArgs.push('--chunking', o.chunking)
    if (o.heartbeat != null) managerArgs.push('--heartbeat', o.heartbeat)
    if (o.deadAfter != null) managerArgs.push('--dead-after', o.deadAfter)
    if (o.reconcile != null) managerArgs.push('--reconcile', o.reconcile)
    if (o.moveShare != null) managerArgs.push('--move-share', String(o.moveShare))
    if (o.minCopies != null) managerArgs.push('--min-copies', String(o.minCopies))
    if (o.maxCopies != null) managerArgs.push('--max-copies', String(o.maxCopies))
    if (o.postgres === true) {
      // As root the server runs as `postgres`, which must pass through --dir to reach its own directory:
      // search permission only (no listing); every secret inside is a 0600 file.
      if (process.getuid?.() === 0) await chmod(o.dir, (await stat(o.dir)).mode | 0o001)
      cluster = await startLocalPostgres({ dir: join(o.dir, 'postgres'), durable: true })
      process.once('exit', stopCluster)
      // Not secret here (the socket trusts local users), but a connection string never goes in argv.
      const urlFile = join(cluster.dir, 'database.url')
      await writeSecretFile(urlFile, `${await cluster.ensureDatabase('cdn')}\n`)
      managerArgs.push('--database-url-file', urlFile)
    }
    const managers: Child[] = []
    for (let i = 0; i < managerCount; i++) {
      // The first manager makes the pool's keys; the others share them (and every port is "any" but the first's).
      const shared = i === 0 ? [] : ['--pool-key-file', join(managerDir, 'pool.key'), '--master-key-file', join(managerDir, 'master.key')]
      const args = withFlags([...managerArgs, '--dir', i === 0 ? managerDir : `${managerDir}-${i}`, ...shared], i === 0 ? {} : { '--http-port': '0', '--p2p-port': '0' })
      const m = await startChild(i === 0 ? 'manager' : `manager-${i}`, args, join(logs, i === 0 ? 'manager.log' : `manager-${i}.log`), o.readyTimeout, {
        env: { CDN_PUBLISHER_TOKENS: token },
        portFlags: i === 0 ? { http: '--manager-port', p2p: '--manager-p2p-port' } : {}
      })
      // Restarted, it must come back where the nodes and the proxy look for it, even when it was started on "any port".
      m.again = restartOnSamePorts(m, { '--http-port': portOf(m.info.http), '--p2p-port': portOf(m.info.multiaddrs[0]) })
      children.push(m)
      managers.push(m)
    }
    const manager = managers[0]
    // The manager's first start wrote it; later starts find it there.
    const adminToken = (await readFile(join(managerDir, 'admin.token'), 'utf8')).trim()
    const managerMultiaddr = String(manager.info.multiaddrs[0])
    // The manager keeps the pool's join token in its data directory; nodes get it through the environment.
    const joinTokenFile = join(managerDir, JOIN_TOKEN_FILE)
    const joinToken = (await readFile(joinTokenFile, 'utf8')).trim()
    const join_ = joinCommand(managerDir, await readManagerAddress(managerDir))
    const nodes = await Promise.all(Array.from({ length: o.nodes }, async (_, i) => {
      const child = await startChild(`node-${i}`, ['node', 'start', '--manager', managerMultiaddr,
        '--data', join(o.dir, `node-${i}`), '--capacity', o.nodeCapacity, '--max-egress', o.nodeEgress,
        ...(o.nodeZones != null && o.nodeZones.length > 0 ? ['--zone', o.nodeZones[i % o.nodeZones.length]] : [])], join(logs, `node-${i}.log`), o.readyTimeout, {
        env: { CDN_JOIN_TOKEN: joinToken }
      })
      children.push(child)
      return child
    }))
    await waitForAliveNodes(String(manager.info.http), o.nodes, o.readyTimeout ?? 60_000, adminToken)
    const proxy = await startChild('proxy', ['proxy', 'start', ...managers.flatMap(m => ['--manager', String(m.info.http)]), '--port', String(o.proxyPort),
      '--cache-dir', join(o.dir, 'proxy', 'cache'), '--state-dir', join(o.dir, 'proxy'), '--cache-size', o.proxyCache ?? sizeText(PROXY_DEFAULTS.cacheBytes)], join(logs, 'proxy.log'), o.readyTimeout, {
      portFlags: { http: '--proxy-port' }
    })
    proxy.again = restartOnSamePorts(proxy, { '--port': portOf(proxy.info.http) })
    children.push(proxy)
    return {
      children,
      cleanup,
      summary: {
        manager: String(manager.info.http),
        managerMultiaddr,
        managerPid: Number(manager.proc.pid),
        managers: managers.map(m => ({ url: String(m.info.http), pid: Number(m.proc.pid), multiaddr: String(m.info.multiaddrs[0]) })),
        ...(cluster != null ? { postgres: { dir: cluster.dir } } : {}),
        proxy: String(proxy.info.http),
        proxyPid: Number(proxy.proc.pid),
        token,
        adminToken,
        joinToken,
        joinTokenFile,
        joinCommand: join_.command,
        dir: o.dir,
        nodes: nodes.map((n, i) => ({ peerId: String(n.info.peerId), http: String(n.info.http), pid: Number(n.proc.pid), multiaddrs: (n.info.multiaddrs as string[]).map(String), data: join(o.dir, `node-${i}`) }))
      }
    }
  } catch (err) {
    await stopChildren(children)
    await cleanup()
    throw err
  }
}

/** The port of `http://host:port` or of `/ip4/…/tcp/port/…`. */
function portOf (address: unknown): string {
  const text = String(address)
  const port = text.startsWith('/') ? /\/tcp\/(\d+)/.exec(text)?.[1] : new URL(text).port
  if (port == null || port === '') throw new ChildExitedError(`cannot tell the port of ${text}`)
  return port
}

/** A restart of `child` with the ports it actually bound in place of what it was asked for (its restarts keep them). */
function restartOnSamePorts (child: Child, ports: Record<string, string>): () => Promise<Child> {
  const again = child.again
  return async () => await again(ports)
}

/** `args` with each `--flag value` pair of `flags` set to the given value (added when missing). */
export function withFlags (args: string[], flags: Record<string, string>): string[] {
  const out = [...args]
  for (const [flag, value] of Object.entries(flags)) {
    const i = out.indexOf(flag)
    if (i >= 0 && i + 1 < out.length) out[i + 1] = value
    else out.push(flag, value)
  }
  return out
}

/** Nodes report ready once listening; the pool is usable only when the manager has seen each of them join. */
export async function waitForAliveNodes (manager: string, count: number, timeout: number, token: string): Promise<void> {
  const deadline = Date.now() + timeout
  for (;;) {
    const res = await callManager({ manager, token }, 'GET', '/api/nodes')
    const alive = (res.nodes as any[]).filter(n => n.state === 'alive').length
    if (alive >= count) return
    if (Date.now() > deadline) throw new TimeoutError(`only ${alive} of ${count} nodes joined the manager within ${timeout} ms`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
