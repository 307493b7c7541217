/**
 * What a benchmark leaves behind: one JSON line per measurement on stdout as
 * it is made, and the whole run in `bench/results/<name>.json` (with the date
 * and the machine), which `bench/report.ts` turns into a table and a chart.
 */
import { cpus, loadavg, release, totalmem, type } from 'node:os'
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export const RESULTS_DIR = join(import.meta.dirname, 'results')

export type System = 'ours' | 'helia' | 'origin'

/** One measured case: its parameters and its figures (Summary objects for repeated figures). */
export interface Measurement {
  bench: string
  system: System
  [key: string]: unknown
}

export interface MachineInfo {
  cpus: number
  cpuModel: string
  memoryGiB: number
  os: string
  node: string
}

export interface ResultsFile {
  bench: string
  /** what the benchmark measures, one line */
  about?: string
  /** ISO time the run started */
  date: string
  machine: MachineInfo
  /** the options the run was given (runs, scale) */
  options: Record<string, unknown>
  wallSeconds: number
  measurements: Measurement[]
  /** why the run stopped early; its measurements are what it made before */
  error?: string
  /** 1-minute load average when the run started and ended: above the core count, other work competed */
  load?: { start: number, end: number }
}

export function machineInfo (): MachineInfo {
  const list = cpus()
  return {
    cpus: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${type()} ${release()}`,
    node: process.version
  }
}

function round2 (n: number): number {
  return Math.round(n * 100) / 100
}

/** Collects a benchmark's measurements, printing each as one JSON line the moment it is made. */
export class ResultSink {
  readonly bench: string
  readonly about: string
  readonly measurements: Measurement[] = []
  private readonly started = new Date()
  private readonly loadAtStart = loadavg()[0]
  private readonly out: (line: string) => void

  constructor (bench: string, about: string, out: (line: string) => void = line => { process.stdout.write(line) }) {
    this.bench = bench
    this.about = about
    this.out = out
  }

  emit (m: Omit<Measurement, 'bench'>): void {
    const full = { bench: this.bench, ...m } as Measurement
    this.measurements.push(full)
    this.out(`${JSON.stringify(full)}\n`)
  }

  toFile (options: Record<string, unknown>, wallSeconds: number): ResultsFile {
    return { bench: this.bench, about: this.about, date: this.started.toISOString(), machine: machineInfo(), options, wallSeconds: Math.round(wallSeconds * 10) / 10, load: { start: round2(this.loadAtStart), end: round2(loadavg()[0]) }, measurements: this.measurements }
  }
}

/** Writes `<dir>/<bench>.json` atomically (a reader never sees half a file). */
export async function writeResults (file: ResultsFile, dir = RESULTS_DIR): Promise<string> {
  await mkdir(dir, { recursive: true })
  const path = join(dir, `${file.bench}.json`)
  await writeFile(`${path}.tmp`, `${JSON.stringify(file, null, 1)}\n`)
  await rename(`${path}.tmp`, path)
  return path
}

/** Every results file of the harness in `dir` (other JSON there, such as the simulator's, is skipped). */
export async function readResults (dir = RESULTS_DIR): Promise<ResultsFile[]> {
  let names: string[]
  try {
    names = (await readdir(dir)).filter(n => n.endsWith('.json')).sort()
  } catch (err: any) {
    if (err?.code === 'ENOENT') return []
    throw err
  }
  const out: ResultsFile[] = []
  for (const name of names) {
    const parsed = JSON.parse(await readFile(join(dir, name), 'utf8'))
    if (parsed != null && typeof parsed.bench === 'string' && Array.isArray(parsed.measurements)) out.push(parsed as ResultsFile)
  }
  return out
}
