/**
 * Resident memory of another process, from /proc (Linux). The kernel keeps a
 * high-water mark (VmHWM) that catches peaks a sampler would miss between two
 * looks; writing 5 to clear_refs resets it, so one long-lived daemon can be
 * measured per phase. Where the reset is refused, a sampler of VmRSS stands in.
 */
import { readFile, writeFile } from 'node:fs/promises'

/** Reads one `Vm…: N kB` field of /proc/<pid>/status, in bytes; undefined when the process is gone. */
export async function readStatusField (pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number | undefined> {
  let text: string
  try {
    text = await readFile(`/proc/${pid}/status`, 'utf8')
  } catch (err: any) {
    if (err?.code === 'ENOENT' || err?.code === 'ESRCH') return undefined
    throw err
  }
  return parseStatusField(text, field)
}

export function parseStatusField (status: string, field: string): number | undefined {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)
  return m == null ? undefined : Number(m[1]) * 1024
}

/** Resets the process's peak-RSS mark to its current RSS; false when the kernel refuses. */
export async function resetPeak (pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/**
 * Follows one process's memory through a phase: `start` resets the kernel's
 * peak mark and samples VmRSS every `everyMs`; `stop` returns the larger of the
 * two peaks (the sampled one alone when the reset was refused).
 */
export class PeakRss {
  readonly pid: number
  private readonly everyMs: number
  private sampled = 0
  private hwmUsable = false
  private timer: NodeJS.Timeout | undefined
  private pending: Promise<void> = Promise.resolve()
  private error: unknown

  constructor (pid: number, everyMs = 100) {
    this.pid = pid
    this.everyMs = everyMs
  }

  async start (): Promise<void> {
    this.hwmUsable = await resetPeak(this.pid)
    this.sampled = (await readStatusField(this.pid, 'VmRSS')) ?? 0
    this.timer = setInterval(() => {
      this.pending = this.pending.then(async () => {
        const rss = await readStatusField(this.pid, 'VmRSS')
        if (rss != null && rss > this.sampled) this.sampled = rss
      }).catch((err: unknown) => { this.error ??= err })
    }, this.everyMs)
  }

  /** Peak resident bytes since start. */
  async stop (): Promise<number> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.pending
    if (this.error !== undefined) throw this.error
    const hwm = this.hwmUsable ? (await readStatusField(this.pid, 'VmHWM')) ?? 0 : 0
    return Math.max(hwm, this.sampled)
  }
}
