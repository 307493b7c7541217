/**
 * Sources as a viewer reads them: a short name instead of a 52-character
 * peer id, and a health in plain words instead of the scoreboard's penalty
 * (ms of delay charged for recent failures, which a healthy source still
 * carries a little of after losing a hedge race).
 */
import { shortId } from '../../core/web-format.ts'
import type { SourceView } from '../fetch/fetch-engine.ts'

export type SourceHealth = 'fast' | 'slow' | 'failing' | 'unused'

/** More than one recent error (2 s each), a timeout (4 s) or a bad copy (15 s): the source is failing. */
export const FAILING_PENALTY_MS = 3000
/** More than one lost hedge race (1 s each, halving every 5 s), or an error, still fresh: slow. One lost race is noise. */
export const SLOW_PENALTY_MS = 1200
/** Slower than this share of the best source's throughput: slow. */
export const SLOW_SHARE = 0.25

export function sourceHealth (s: Pick<SourceView, 'penalty' | 'bytesPerSecond' | 'bytes'>, bestBytesPerSecond: number): SourceHealth {
  if (s.penalty >= FAILING_PENALTY_MS) return 'failing'
  if (s.bytes === 0) return s.penalty > 0 ? 'slow' : 'unused'
  if (s.penalty >= SLOW_PENALTY_MS) return 'slow'
  if (bestBytesPerSecond > 0 && s.bytesPerSecond < SLOW_SHARE * bestBytesPerSecond) return 'slow'
  return 'fast'
}

/** `host:port` of a data-plane URL, '' when it is not one. */
export function hostPort (url: string): string {
  try {
    return url === '' ? '' : new URL(url).host
  } catch {
    return ''
  }
}

export interface NamedSource extends SourceView {
  /** a few characters of the peer id (or `cache`) */
  name: string
  /** host:port of its data plane, '' when unknown */
  address: string
  health: SourceHealth
}

/** Every source with its short name and health, the busiest first. */
export function nameSources (sources: readonly SourceView[]): NamedSource[] {
  const best = Math.max(0, ...sources.filter(s => s.bytes > 0).map(s => s.bytesPerSecond))
  return sources
    .map(s => ({ ...s, name: shortId(s.source), address: hostPort(s.http), health: sourceHealth(s, best) }))
    .sort((a, b) => b.bytes - a.bytes)
}
