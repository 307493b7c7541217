/**
 * `cdn up` keeps its network whole: a child that dies on its own (a crash,
 * the OOM killer, a stray `kill`) is started again from the same data
 * directory, after a pause that doubles while it keeps dying and resets
 * once it has stayed up a while. `--no-restart` turns this off, for those
 * who kill children on purpose (tests of the pool's repair).
 */
import { open } from 'node:fs/promises'
import { describeError } from '../core/errors.ts'
import { stopChildren, type Child } from './local-network.ts'

export interface SupervisorInit {
  restart: boolean
  /** ms before the first restart (default 1 s); doubles up to maxDelayMs */
  firstDelayMs?: number
  maxDelayMs?: number
  /** a child up this long has its delay reset (default 30 s) */
  stableMs?: number
  /** one line per event, for the terminal */
  say: (line: string) => void
}

interface Watched { child: Child, delayMs: number, startedAt: number }

export class ChildSupervisor {
  private readonly init: Required<SupervisorInit>
  private readonly watched: Watched[]
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly starting = new Set<Promise<void>>()
  private stopping = false

  constructor (children: Child[], init: SupervisorInit) {
    this.init = { firstDelayMs: 1000, maxDelayMs: 30_000, stableMs: 30_000, ...init }
    this.watched = children.map(child => ({ child, delayMs: this.init.firstDelayMs, startedAt: Date.now() }))
    for (const w of this.watched) this.watch(w)
  }

  /** The children as they are now (a restarted one has a new process). */
  get children (): Child[] {
    return this.watched.map(w => w.child)
  }

  private watch (w: Watched): void {
    const proc = w.child.proc
    proc.once('exit', (code, signal) => {
      if (this.stopping) return
      const how = signal ?? `code ${String(code)}`
      // A clean exit is the child's own decision (a node removed from the pool); only failures are restarted.
      if (code === 0 && signal == null) {
        this.init.say(`${w.child.role} (pid ${String(proc.pid)}) exited cleanly; not restarted`)
        return
      }
      // A child that failed on its own says why in its log's last line: shown, so the failure is not a mystery.
      if (signal == null) void this.lastWords(w.child).then(words => { if (words != null) this.init.say(`  ${w.child.role}'s last log line: ${words}`) })
      if (!this.init.restart) {
        this.init.say(`${w.child.role} (pid ${String(proc.pid)}) exited: ${how}; not restarted (--no-restart)`)
        return
      }
      if (Date.now() - w.startedAt >= this.init.stableMs) w.delayMs = this.init.firstDelayMs
      this.init.say(`${w.child.role} (pid ${String(proc.pid)}) exited: ${how}; restarting in ${(w.delayMs / 1000).toFixed(0)} s`)
      this.schedule(w)
    })
  }

  /** The last line of a child's log, cut to a readable length (nothing when it has no log). */
  private async lastWords (child: Child): Promise<string | undefined> {
    if (child.logFile == null) return undefined
    try {
      const fh = await open(child.logFile, 'r')
      try {
        const { size } = await fh.stat()
        const tail = Buffer.alloc(Math.min(size, 4096))
        await fh.read(tail, 0, tail.length, size - tail.length)
        return tail.toString('utf8').trimEnd().split('\n').at(-1)?.slice(0, 600)
      } finally {
        await fh.close()
      }
    } catch {
      return undefined
    }
  }

  private schedule (w: Watched): void {
    const delay = w.delayMs
    w.delayMs = Math.min(this.init.maxDelayMs, w.delayMs * 2)
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      const task = this.restart(w)
      this.starting.add(task)
      void task.finally(() => { this.starting.delete(task) })
    }, delay)
    this.timers.add(timer)
  }

  private async restart (w: Watched): Promise<void> {
    if (this.stopping) return
    try {
      const next = await w.child.again()
      if (this.stopping) {
        await stopChildren([next])
        return
      }
      w.child.proc = next.proc
      w.child.info = next.info
      w.startedAt = Date.now()
      this.init.say(`${w.child.role} restarted (pid ${String(next.proc.pid)})`)
      this.watch(w)
    } catch (err) {
      if (this.stopping) return
      this.init.say(`${w.child.role} could not be restarted: ${describeError(err)}; trying again in ${(w.delayMs / 1000).toFixed(0)} s`)
      this.schedule(w)
    }
  }

  /** No more restarts; every child stopped (SIGTERM, then SIGKILL after the grace). */
  async stop (): Promise<void> {
    this.stopping = true
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    await Promise.allSettled([...this.starting])
    await stopChildren(this.children)
  }
}
