/** Reading figures out of results files, shared by the report's table and chart. */
import type { Measurement, ResultsFile } from './results.ts'
import type { Summary } from './stats.ts'

export function isSummary (v: unknown): v is Summary {
  return v != null && typeof v === 'object' && typeof (v as Summary).median === 'number' && Array.isArray((v as Summary).runs)
}

/** The median of a figure that may be a Summary or a plain number. */
export function figure (m: Measurement | undefined, key: string): number | undefined {
  const v = m?.[key]
  if (isSummary(v)) return v.median
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined
}

export function find (results: ResultsFile[], bench: string, match: Record<string, unknown> = {}): Measurement | undefined {
  const file = results.find(r => r.bench === bench)
  return file?.measurements.find(m => Object.entries(match).every(([k, v]) => m[k] === v))
}

/** Three significant digits, no trailing zeros: 0.96, 24.5, 25, 8.81, 1234. */
export function fmt (n: number | undefined): string {
  if (n == null || !Number.isFinite(n)) return '–'
  if (Math.abs(n) >= 1000) return n.toFixed(0)
  return String(Number(n.toPrecision(3)))
}
