/** Summaries of repeated runs: the median is the figure, min and max show how far runs strayed. */

export interface Summary {
  median: number
  min: number
  max: number
  /** (max − min) ÷ median: 0.1 means the runs spanned 10 % of the figure */
  spread: number
  /** every run, in order */
  runs: number[]
}

export function median (values: number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Rounds to `digits` significant digits, so JSON stays readable without losing what matters. */
export function round (value: number, digits = 4): number {
  if (!Number.isFinite(value) || value === 0) return value
  return Number(value.toPrecision(digits))
}

export function summarize (values: number[]): Summary {
  const m = median(values)
  const min = Math.min(...values)
  const max = Math.max(...values)
  return { median: round(m), min: round(min), max: round(max), spread: round(m === 0 ? 0 : (max - min) / m, 3), runs: values.map(v => round(v)) }
}

/** a ÷ b of two medians, rounded; NaN when either is missing. */
export function ratio (a: number | undefined, b: number | undefined): number {
  if (a == null || b == null || b === 0) return NaN
  return round(a / b, 3)
}
