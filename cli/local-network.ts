import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { CdnError, TimeoutError } from '../core/errors.ts'
import { callManager } from './manager-api.ts'

const CDN = join(import.meta.dirname, 'cdn.ts')

export interface UpOptions {
  nodes: number
  dir: string
  managerPort: number
  proxyPort: number
  replicas?: number
  chunkSize?: string
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
}

export interface Child { role: string, proc: ChildProcess, info: Record<string, any> }

export class ChildExitedError extends CdnError {
  constructor (message: string) { super(message, 'ERR_CHILD_EXITED', 500) }
}

/** Starts `cdn <args>` as a child, its logs to a file, and resolves with its JSON ready line. Secrets go in `env`, never in `args` (ps shows argv to everyone). */
export async function startChild (role: string, args: string[], logFile: string, timeout = 60_000, env: Record<string, string> = {}): Promise<Child> {
  const log = createWriteStream(logFile, { flags: 'a' })
  const proc = spawn(process.execPath, [CDN, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
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
      try {
        resolve(JSON.parse(line))
      } catch {
        reject(new ChildExitedError(`${role} printed "${line.slice(0, 200)}" instead of its ready line`))
      }
    })
  })
  return { role, proc, info }
}

/** SIGTERM every child, then SIGKILL whatever is still alive after `graceMs`. */
export async function stopChildren (children: Child[], graceMs = 10_000): Promise<void> {
  await Promise.all(children.reverse().map(async ({ proc }) => {
    if (proc.exitCode != null || proc.signalCode != null) return
    const exited = new Promise<void>(resolve => proc.once('exit', () => { resolve() }))
    proc.kill('SIGTERM')
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }))
}

export interface LocalNetwork {
  summary: { manager: string, managerMultiaddr: string, managerPid: number, proxy: string, proxyPid: number, token: string, adminToken: string, joinToken: string, dir: string, nodes: Array<{ peerId: string, http: string, pid: number, multiaddrs: string[], data: string }> }
  children: Child[]
}

/** Brings up a manager, N nodes and a proxy as separate processes on loopback. */
export async function startLocalNetwork (o: UpOptions): Promise<LocalNetwork> {
  const logs = join(o.dir, 'logs')
  await mkdir(logs, { recursive: true })
  const token = randomBytes(18).toString('base64url')
  const joinToken = randomBytes(18).toString('base64url')
  const children: Child[] = []
  try {
    const managerArgs = ['manager', 'start', '--dir', join(o.dir, 'manager'), '--http-port', String(o.managerPort)]
    if (o.replicas != null) managerArgs.push('--replicas', String(o.replicas))
    if (o.chunkSize != null) managerArgs.push('--chunk-size', o.chunkSize)
    if (o.heartbeat != null) managerArgs.push('--heartbeat', o.heartbeat)
    if (o.deadAfter != null) managerArgs.push('--dead-after', o.deadAfter)
    if (o.reconcile != null) managerArgs.push('--reconcile', o.reconcile)
    if (o.moveShare != null) managerArgs.push('--move-share', String(o.moveShare))
    if (o.minCopies != null) managerArgs.push('--min-copies', String(o.minCopies))
    if (o.maxCopies != null) managerArgs.push('--max-copies', String(o.maxCopies))
    const manager = await startChild('manager', managerArgs, join(logs, 'manager.log'), o.readyTimeout, { CDN_PUBLISHER_TOKENS: token, CDN_JOIN_TOKENS: joinToken })
    children.push(manager)
    // The manager's first start wrote it; later starts find it there.
    const adminToken = (await readFile(join(o.dir, 'manager', 'admin.token'), 'utf8')).trim()
    const managerMultiaddr = String(manager.info.multiaddrs[0])
    const nodes = await Promise.all(Array.from({ length: o.nodes }, async (_, i) => {
      const child = await startChild(`node-${i}`, ['node', 'start', '--manager', managerMultiaddr,
        '--data', join(o.dir, `node-${i}`), '--capacity', o.nodeCapacity, '--max-egress', o.nodeEgress,
        ...(o.nodeZones != null && o.nodeZones.length > 0 ? ['--zone', o.nodeZones[i % o.nodeZones.length]] : [])], join(logs, `node-${i}.log`), o.readyTimeout, { CDN_JOIN_TOKEN: joinToken })
      children.push(child)
      return child
    }))
    await waitForAliveNodes(String(manager.info.http), o.nodes, o.readyTimeout ?? 60_000, adminToken)
    const proxy = await startChild('proxy', ['proxy', 'start', '--manager', String(manager.info.http), '--port', String(o.proxyPort),
      '--cache-dir', join(o.dir, 'proxy', 'cache'), '--state-dir', join(o.dir, 'proxy'), '--cache-size', o.proxyCache ?? '2GB'], join(logs, 'proxy.log'), o.readyTimeout)
    children.push(proxy)
    return {
      children,
      summary: {
        manager: String(manager.info.http),
        managerMultiaddr,
        managerPid: Number(manager.proc.pid),
        proxy: String(proxy.info.http),
        proxyPid: Number(proxy.proc.pid),
        token,
        adminToken,
        joinToken,
        dir: o.dir,
        nodes: nodes.map((n, i) => ({ peerId: String(n.info.peerId), http: String(n.info.http), pid: Number(n.proc.pid), multiaddrs: (n.info.multiaddrs as string[]).map(String), data: join(o.dir, `node-${i}`) }))
      }
    }
  } catch (err) {
    await stopChildren(children)
    throw err
  }
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
