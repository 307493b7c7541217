/**
 * The pool's roles started on testbed hosts the way operators start them on
 * their own machines: `cdn manager start --listen 0.0.0.0` on the manager's
 * host, the join command the manager printed on each node's host (run by a
 * shell, verbatim but for where `cdn` and the data directory are), `cdn
 * proxy start --listen 0.0.0.0` on the viewer's.
 */
import type { ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { sh, TestbedError, type Testbed } from './netns.ts'

export const ROOT = join(import.meta.dirname, '..')
export const CDN = join(ROOT, 'cli', 'cdn.ts')
/** The project's pinned Node, as `ip netns exec` runs it. */
export const NODE = join(ROOT, 'node_modules', '.bin', 'node')

export interface Daemon { host: string, proc: ChildProcess, info: any }

/** Resolves with the daemon's JSON ready line; a daemon that exits or fails first is an error. */
export async function readyLine (proc: ChildProcess, what: string, timeoutMs = 90_000): Promise<any> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new TestbedError(`${what} was not ready within ${timeoutMs} ms`)) }, timeoutMs)
    const onExit = (code: number | null): void => { clearTimeout(timer); reject(new TestbedError(`${what} exited (${String(code)}) before it was ready`)) }
    proc.once('exit', onExit)
    createInterface({ input: proc.stdout! }).once('line', (line) => {
      clearTimeout(timer)
      proc.off('exit', onExit)
      let info: any
      try {
        info = JSON.parse(line)
      } catch {
        reject(new TestbedError(`${what} printed "${line.slice(0, 200)}" instead of its ready line`))
        return
      }
      if (info.ready === false) reject(new TestbedError(`${what} could not start: ${String(info.error?.message)}`))
      else resolve(info)
    })
  })
}

export async function startManager (bed: Testbed, host: string, o: { dir: string, logs: string, publisherToken: string, args?: string[] }): Promise<Daemon> {
  const proc = bed.spawn(host, [NODE, CDN, 'manager', 'start', '--dir', o.dir, '--listen', '0.0.0.0', ...(o.args ?? []), '--json'], {
    env: { CDN_PUBLISHER_TOKENS: o.publisherToken },
    logFile: join(o.logs, `${host}.log`)
  })
  return { host, proc, info: await readyLine(proc, `the manager on ${host}`) }
}

/** What `cdn manager join-command --json` prints for the manager's data directory. */
export async function joinCommandOf (managerDir: string): Promise<{ command: string, manager: string, tokenFile: string }> {
  const r = await sh([NODE, CDN, 'manager', 'join-command', '--dir', managerDir, '--json'])
  return JSON.parse(r.stdout)
}

/** Runs the manager's join command on `host`, as an operator pastes it into that machine's shell. */
export async function joinNode (bed: Testbed, host: string, command: string, o: { dir: string, logs: string, args?: string[] }): Promise<Daemon> {
  if (!/ cdn node start /.test(command) || !command.includes(' --data ./cdn-node')) throw new TestbedError(`unexpected join command: ${command}`)
  const line = `${command.replace(' cdn node start ', ` exec ${NODE} ${CDN} node start `).replace(' --data ./cdn-node', ` --data ${o.dir}`)} ${(o.args ?? []).join(' ')} --json`
  const proc = bed.spawn(host, ['/bin/sh', '-c', line], { logFile: join(o.logs, `${host}.log`) })
  return { host, proc, info: await readyLine(proc, `the node on ${host}`) }
}

export async function startProxy (bed: Testbed, host: string, managerUrl: string, o: { dir: string, logs: string, args?: string[] }): Promise<Daemon> {
  const proc = bed.spawn(host, [NODE, CDN, 'proxy', 'start', '--manager', managerUrl, '--listen', '0.0.0.0', '--port', '8080',
    '--state-dir', o.dir, '--cache-dir', join(o.dir, 'cache'), ...(o.args ?? []), '--json'], { logFile: join(o.logs, `${host}.log`) })
  return { host, proc, info: await readyLine(proc, `the proxy on ${host}`) }
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs` saying what it waited for. */
export async function waitFor<T> (what: string, check: () => Promise<T | undefined>, timeoutMs: number, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (err) {
      last = ` (last error: ${err instanceof Error ? err.message : String(err)})`
    }
    if (Date.now() > deadline) throw new TestbedError(`timed out after ${timeoutMs} ms waiting for ${what}${last}`)
    await sleep(everyMs)
  }
}
