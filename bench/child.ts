/**
 * Every role a benchmark measures runs in its own process, so no two share an
 * event loop. A child announces itself with one JSON line on stdout (the
 * `--json` ready line every daemon of ours prints); its stderr goes to a log
 * file that the error messages point at.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createWriteStream } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { TimeoutError, UpstreamError } from '../core/errors.ts'

export interface ChildInit {
  /** a name for messages, e.g. `node-2` */
  role: string
  /** the script and its arguments, run with this Node */
  args: string[]
  /** where the child's stderr goes */
  logFile: string
  /** ms to wait for the ready line (default 120 s) */
  readyTimeout?: number
  cwd?: string
  env?: Record<string, string>
}

export interface Child {
  role: string
  proc: ChildProcess
  pid: number
  /** the parsed ready line */
  info: Record<string, any>
  logFile: string
  stop (graceMs?: number): Promise<void>
}

/**
 * With BENCH_CPU_PROF=DIR every child is profiled (`node --cpu-prof`), each
 * role into its own folder DIR/<role> (the profile is written when it exits),
 * for bench/profile-summary.ts to read.
 */
export function profileFlags (role: string): string[] {
  const dir = process.env.BENCH_CPU_PROF
  if (dir == null || dir === '') return []
  return ['--cpu-prof', `--cpu-prof-dir=${join(dir, role.replace(/-\d+$/, ''))}`]
}

export async function startChild (init: ChildInit): Promise<Child> {
  await mkdir(dirname(init.logFile), { recursive: true })
  const log = createWriteStream(init.logFile, { flags: 'a' })
  const proc = spawn(process.execPath, [...profileFlags(init.role), ...init.args], {
    cwd: init.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CDN_LOG_LEVEL: process.env.CDN_LOG_LEVEL ?? 'warn', ...init.env }
  })
  proc.stderr!.pipe(log)
  const rl = createInterface({ input: proc.stdout! })
  const lines = rl[Symbol.asyncIterator]()
  const timeout = init.readyTimeout ?? 120_000
  const stop = async (graceMs = 15_000): Promise<void> => {
    if (proc.exitCode == null && proc.signalCode == null) {
      const exited = once(proc, 'exit')
      // A stopped (SIGSTOP) child cannot act on SIGTERM until it runs again.
      proc.kill('SIGCONT')
      proc.kill('SIGTERM')
      const timer = setTimeout(() => { proc.kill('SIGKILL') }, graceMs)
      await exited
      clearTimeout(timer)
    }
    rl.close()
    await new Promise<void>(resolve => { log.end(resolve) })
  }
  let settle: (() => void) | undefined
  try {
    const first = await new Promise<IteratorResult<string>>((resolve, reject) => {
      const onExit = (code: number | null, signal: string | null): void => {
        reject(new UpstreamError(`${init.role} exited (${String(code ?? signal)}) before it was ready; log: ${init.logFile}`))
      }
      const timer = setTimeout(() => { reject(new TimeoutError(`${init.role} was not ready within ${timeout} ms; log: ${init.logFile}`)) }, timeout)
      settle = () => {
        clearTimeout(timer)
        proc.off('exit', onExit)
      }
      proc.once('exit', onExit)
      lines.next().then(resolve, reject)
    })
    if (first.done === true) throw new UpstreamError(`${init.role} closed its output before it was ready; log: ${init.logFile}`)
    let info: Record<string, any>
    try {
      info = JSON.parse(first.value)
    } catch (err) {
      throw new UpstreamError(`${init.role} printed "${first.value.slice(0, 200)}" instead of a JSON ready line; log: ${init.logFile}`, { cause: err })
    }
    return { role: init.role, proc, pid: proc.pid!, info, logFile: init.logFile, stop }
  } catch (err) {
    await stop(2000)
    throw err
  } finally {
    settle?.()
  }
}

/** Stops children in reverse order of start, the way each daemon closes its own parts. */
export async function stopAll (children: Child[]): Promise<void> {
  for (const child of [...children].reverse()) await child.stop()
}
