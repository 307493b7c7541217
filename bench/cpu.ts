/**
 * CPU time of other processes, from /proc/<pid>/stat (Linux): user + system
 * time in clock ticks. CPU milliseconds per MiB is the figure to steer by on a
 * shared machine: wall time swings with whatever else runs, CPU time spent on
 * the same work hardly does.
 */
import { execFileSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { MiB } from './context.ts'
import { round, summarize, type Summary } from './stats.ts'

let ticksPerSecond: number | undefined

function clockTicks (): number {
  if (ticksPerSecond == null) {
    // USER_HZ is 100 on every Linux this runs on; getconf says so where it differs.
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      ticksPerSecond = 100
    }
  }
  return ticksPerSecond
}

/** utime + stime of `/proc/<pid>/stat`, in ms; undefined when the process is gone. */
export async function processCpuMs (pid: number): Promise<number | undefined> {
  let text: string
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8')
  } catch (err: any) {
    if (err?.code === 'ENOENT' || err?.code === 'ESRCH') return undefined
    throw err
  }
  return parseStatCpuMs(text, clockTicks())
}

/** The command name (field 2) may hold spaces and parentheses, so fields are counted after its last `)`. */
export function parseStatCpuMs (stat: string, ticks: number): number {
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
  const utime = Number(rest[11])
  const stime = Number(rest[12])
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new TypeError(`unreadable /proc stat line: ${stat.slice(0, 80)}`)
  return (utime + stime) * 1000 / ticks
}

/**
 * CPU spent by groups of processes over one phase: `start` reads every pid,
 * `stop` reads them again and gives each group's milliseconds. This process
 * itself (the benchmark's HTTP client) is measured with `process.cpuUsage`.
 */
export class CpuMeter {
  private readonly groups: Record<string, number[]>
  private before = new Map<number, number>()
  private self = process.cpuUsage()

  constructor (groups: Record<string, number[]>) {
    this.groups = groups
  }

  async start (): Promise<void> {
    this.before = await this.read()
    this.self = process.cpuUsage()
  }

  /** ms per group, plus `client` for this process. */
  async stop (): Promise<Record<string, number>> {
    const self = process.cpuUsage(this.self)
    const after = await this.read()
    const out: Record<string, number> = {}
    for (const [group, pids] of Object.entries(this.groups)) {
      out[group] = pids.reduce((sum, pid) => sum + Math.max(0, (after.get(pid) ?? 0) - (this.before.get(pid) ?? 0)), 0)
    }
    out.client = (self.user + self.system) / 1000
    return out
  }

  private async read (): Promise<Map<number, number>> {
    const pids = [...new Set(Object.values(this.groups).flat())]
    const values = await Promise.all(pids.map(async pid => [pid, (await processCpuMs(pid)) ?? 0] as const))
    return new Map(values)
  }
}

/** Each group's ms divided by the MiB the phase moved, rounded. */
export function perMiB (ms: Record<string, number>, bytes: number): Record<string, number> {
  return Object.fromEntries(Object.entries(ms).map(([k, v]) => [k, round(v / (bytes / MiB), 3)]))
}

/** Per-run CPU figures of each role, summarised role by role. */
export function summarizeCpu (runs: Array<Record<string, number>>): Record<string, Summary> {
  const roles = [...new Set(runs.flatMap(r => Object.keys(r)))]
  return Object.fromEntries(roles.map(role => [role, summarize(runs.map(r => r[role] ?? NaN))]))
}
