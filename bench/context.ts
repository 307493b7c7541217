/**
 * What every benchmark is handed: where to put its files, how many runs to
 * make, a size scale (1 = the sizes the issue names; smaller for a quick try),
 * where its measurements go, and a way to say what it is doing.
 */
import { join } from 'node:path'
import { formatBytes } from '../core/units.ts'
import { fileFingerprint } from './download.ts'
import { makeRandomFile, requireFreeDisk } from './files.ts'
import type { ResultSink } from './results.ts'

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

export interface TestFile {
  path: string
  size: number
  /** `head:tail` hashes to check downloads against */
  fingerprint: string
}

export interface BenchContext {
  name: string
  /** a temporary directory of this benchmark's own, removed after it */
  workDir: string
  /** runs wanted per case; `repeat` may stop sooner to keep within the time budget */
  runs: number
  scale: number
  sink: ResultSink
  signal: AbortSignal
  /** a progress line on stderr */
  log (message: string): void
  /** `base` bytes times the scale, in whole MiB (at least one) */
  size (base: number): number
  /** a file of random bytes in workDir, made once per label */
  file (label: string, size: number): Promise<TestFile>
  /**
   * Run numbers for case `part` of `parts` (cases run in order): 1 always,
   * then up to `runs` while another run (as long as the last one) still leaves
   * room in the benchmark's time budget for every later case to set up and
   * make its first run, each guessed to cost what this case's took.
   */
  repeat (part: number, parts: number): Generator<number>
  /** how many runs were cut to keep within the budget (recorded with the results) */
  readonly cutRuns: number
}

export interface Benchmark {
  name: string
  /** one line for `run.ts --help` and the report */
  about: string
  run (ctx: BenchContext): Promise<void>
}

export interface ContextInit {
  name: string
  workDir: string
  runs: number
  scale: number
  sink: ResultSink
  signal: AbortSignal
  /** ms this benchmark may take; Infinity: always make every run */
  budgetMs: number
  /** clock in ms, injectable for tests */
  now?: () => number
}

export function createContext (init: ContextInit): BenchContext {
  const files = new Map<string, Promise<TestFile>>()
  const now = init.now ?? (() => performance.now())
  const t0 = now()
  let cutRuns = 0
  const log = (message: string): void => {
    process.stderr.write(`[${init.name} ${((now() - t0) / 1000).toFixed(0).padStart(4)} s] ${message}\n`)
  }
  // When the last case's runs ended: what a case costs before its first run (starting a pool, publishing) counts from here.
  let lastCaseEnd = t0
  function * repeat (part: number, parts: number): Generator<number> {
    const caseStart = lastCaseEnd
    let caseMinMs = 0
    let lastRunMs = 0
    try {
      for (let run = 1; run <= init.runs; run++) {
        const started = now()
        // Another run must leave time for each later case's setup and first run, guessed as costly as this case's.
        if (run > 1 && started + lastRunMs + (parts - part - 1) * caseMinMs > t0 + init.budgetMs) {
          cutRuns += init.runs - run + 1
          log(`only ${run - 1} of ${init.runs} runs for this case: another would overrun the time budget`)
          return
        }
        yield run
        lastRunMs = now() - started
        if (run === 1) caseMinMs = now() - caseStart
      }
    } finally {
      lastCaseEnd = now()
    }
  }
  return {
    ...init,
    log,
    repeat,
    get cutRuns () { return cutRuns },
    size: base => Math.max(MiB, Math.round(base * init.scale / MiB) * MiB),
    file: async (label, size) => {
      let made = files.get(label)
      if (made == null) {
        made = (async () => {
          const path = join(init.workDir, `${label}.bin`)
          await requireFreeDisk(init.workDir, size + GiB, `the ${formatBytes(size)} file "${label}"`)
          log(`making ${label} (${formatBytes(size)})`)
          await makeRandomFile(path, size)
          return { path, size, fingerprint: await fileFingerprint(path, size) }
        })()
        files.set(label, made)
      }
      return made
    }
  }
}

/** MB/s in the form the logs show. */
export function mbps (value: number): string {
  return `${value.toFixed(1)} MB/s`
}
