import { BadInputError } from './errors.ts'

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4
}

/** Parses operator-friendly sizes: `200GB`, `1.5GiB`, `4096`. Decimal units are powers of 1000. */
export function parseSize (text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(text))
  const unit = m?.[2]?.toLowerCase() ?? ''
  if (m == null || !(unit in SIZE_UNITS)) {
    throw new BadInputError(`invalid size "${text}": expected a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)`)
  }
  return Math.floor(Number(m[1]) * SIZE_UNITS[unit])
}

/** Parses a rate such as `50MB/s` into bytes per second; `0` or `unlimited` means no cap (Infinity). */
export function parseRate (text: string): number {
  const t = String(text).trim().toLowerCase()
  if (t === 'unlimited' || t === '0' || t === 'inf') return Infinity
  const body = t.endsWith('/s') ? t.slice(0, -2) : t
  try {
    return parseSize(body)
  } catch {
    throw new BadInputError(`invalid rate "${text}": expected e.g. 50MB/s or unlimited`)
  }
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** Parses `500ms`, `30s`, `5m`, `2h`, `7d` into milliseconds. */
export function parseDuration (text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(String(text))
  if (m == null) throw new BadInputError(`invalid duration "${text}": expected e.g. 500ms, 30s, 5m, 2h, 7d`)
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2].toLowerCase()])
}

export function formatBytes (n: number): string {
  if (!Number.isFinite(n)) return 'unlimited'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}

const EXACT_SIZES: Array<[string, number]> = [['TiB', 1024 ** 4], ['TB', 1e12], ['GiB', 1024 ** 3], ['GB', 1e9], ['MiB', 1024 ** 2], ['MB', 1e6], ['KiB', 1024], ['KB', 1e3]]

/** A size as an operator writes it, exact so that parseSize reads it back: `10GB`, `1MiB`, `unlimited`. */
export function sizeText (n: number): string {
  if (!Number.isFinite(n)) return 'unlimited'
  const unit = EXACT_SIZES.find(([, u]) => n >= u && n % u === 0)
  return unit == null ? String(n) : `${n / unit[1]}${unit[0]}`
}

/** A duration as an operator writes it, exact so that parseDuration reads it back: `5s`, `10m`, `1d`. */
export function durationText (ms: number): string {
  const unit = Object.entries(DURATION_UNITS).reverse().find(([, u]) => ms >= u && ms % u === 0)
  return unit == null ? `${ms}ms` : `${ms / unit[1]}${unit[0]}`
}
