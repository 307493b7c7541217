/**
 * The fetch scheduler's policy, pure: which source gets which chunk, and how
 * many chunks may be in flight. The content reader feeds it what it knows and
 * carries out the plan; the same code runs in unit tests and the simulator.
 */
import type { FinishEstimator, SourceEstimate } from './scoreboard.ts'
import { withDefaults } from '../../core/with-defaults.ts'

export interface PlanInput {
  /** chunk indexes waiting for a request, earliest first (the playhead matters most) */
  wanted: readonly number[]
  /** sources that hold a chunk and have not failed it this round */
  holders: (chunk: number) => readonly string[]
  /** bytes a chunk's blob will take on the wire */
  bytes: (chunk: number) => number
  /** how many more requests may start now (the window minus what is in flight or buffered) */
  slots: number
  /** this download's requests in flight per source */
  inflightBySource: ReadonlyMap<string, number>
  /** cap on one download's requests in flight at one source (its connection count) */
  maxPerSource: number
  estimator: FinishEstimator
}

export interface Assignment {
  chunk: number
  source: string
}

/**
 * Gives each wanted chunk, earliest first, to the holder that would finish it
 * soonest, counting what this plan has already queued there, so equal sources
 * share the work and a faster one takes more. A chunk whose holders are all at
 * their cap waits, and later chunks may go ahead of it to keep other sources busy.
 */
export function planRequests (input: PlanInput): Assignment[] {
  const out: Assignment[] = []
  const extraBytes = new Map<string, number>()
  const extraCount = new Map<string, number>()
  for (const chunk of input.wanted) {
    if (out.length >= input.slots) break
    const bytes = input.bytes(chunk)
    const best = soonest(input.holders(chunk), (source) => {
      const busy = (input.inflightBySource.get(source) ?? 0) + (extraCount.get(source) ?? 0)
      return busy >= input.maxPerSource ? Infinity : input.estimator.expectedFinish(source, bytes, extraBytes.get(source) ?? 0)
    })
    if (best === undefined) continue
    out.push({ chunk, source: best })
    extraBytes.set(best, (extraBytes.get(best) ?? 0) + bytes)
    extraCount.set(best, (extraCount.get(best) ?? 0) + 1)
  }
  return out
}

/** The source with the smallest finite finish time; the first of equals wins. */
function soonest (sources: readonly string[], finish: (source: string) => number): string | undefined {
  let best: string | undefined
  let bestFinish = Infinity
  for (const source of sources) {
    const f = finish(source)
    if (f < bestFinish) {
      best = source
      bestFinish = f
    }
  }
  return best
}

export interface HedgeInit {
  /** a request running past this many times its expected finish is duplicated on another holder (Infinity: never) */
  hedgeFactor: number
  /** ms a request runs at least before it is duplicated, so noise on fast transfers causes no hedges */
  hedgeMinMs: number
}

/**
 * When a request just started may be duplicated elsewhere. It is judged
 * against what the best eligible holder of the chunk would take, its own
 * source included: a source whose estimate has collapsed (a stalled node
 * drags it down) must not earn itself a late deadline. Measured before the
 * request joins the queue there, so what it waits behind counts.
 */
export function hedgeDeadline (now: number, source: string, holders: readonly string[], bytes: number, estimator: FinishEstimator, init: HedgeInit): number {
  let expected = estimator.expectedFinish(source, bytes)
  for (const s of holders) expected = Math.min(expected, estimator.expectedFinish(s, bytes))
  return now + Math.max(init.hedgeMinMs, init.hedgeFactor * expected)
}

/** The holder to duplicate a slow request on: the one other than the slow source expected to finish first, if any. */
export function hedgeTarget (slow: string, holders: readonly string[], bytes: number, estimator: FinishEstimator): string | undefined {
  return soonest(holders, s => s === slow ? Infinity : estimator.expectedFinish(s, bytes))
}

export interface WindowInit {
  /** fewest chunks in flight or buffered (default 2) */
  min?: number
  /** most chunks in flight or buffered (default 64) */
  max?: number
  /** most bytes in flight or buffered, bounding memory per download (default 32 MiB) */
  maxBytes?: number
  /** most requests one download keeps at one source (default 4) */
  perSource?: number
}

export const DEFAULT_WINDOW: Required<WindowInit> = { min: 2, max: 64, maxBytes: 32 * 1024 * 1024, perSource: 4 }

/**
 * How many chunks a download keeps in flight (or fetched and not yet read).
 * Each source gets enough requests to cover its bandwidth-delay product plus
 * one waiting behind it, so it never idles between chunks; more sources and
 * faster ones widen the window, within the count and memory bounds.
 */
export function windowSize (sources: readonly SourceEstimate[], chunkBytes: number, init: WindowInit = {}): number {
  const o = withDefaults<WindowInit>(DEFAULT_WINDOW, init)
  const chunk = Math.max(1, chunkBytes)
  let want = 0
  for (const s of sources) {
    const bdp = Math.ceil(s.rttMs * s.throughput / chunk)
    want += Math.min(o.perSource, 1 + Math.max(1, bdp))
  }
  const cap = Math.max(o.min, Math.min(o.max, Math.floor(o.maxBytes / chunk)))
  return Math.max(o.min, Math.min(cap, want))
}
