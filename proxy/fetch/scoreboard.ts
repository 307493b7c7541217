/**
 * What the proxy has learned about each source from real transfers (and, for
 * a source not yet used, from a light probe): smoothed round-trip time and
 * throughput, bytes queued there right now, and a penalty for recent failures
 * that fades with time. Pure: no I/O, the clock is injected, so the
 * scheduler's choices can be replayed in tests and the simulator.
 */
import { withDefaults } from '../../core/with-defaults.ts'

/**
 * error: the request failed; timeout: it ran out of time; hash: the bytes did
 * not match the id; slow: it ran so far past its expected time that a hedge
 * on another source beat it.
 */
export type FailureKind = 'error' | 'timeout' | 'hash' | 'slow'

export interface ScoreboardInit {
  /** weight of a new sample in the moving averages, 0..1 (default 0.3) */
  alpha?: number
  /** ms, assumed for a source before any sample when no other source is measured (default 20) */
  initialRttMs?: number
  /** bytes per ms, likewise (default 10_000, i.e. 10 MB/s) */
  initialThroughput?: number
  /** ms for a penalty to halve (default 5000) */
  penaltyHalfLifeMs?: number
  /** ms of expected delay each failure adds (defaults: error 2000, timeout 4000, hash 15000, slow 1000) */
  penalties?: Partial<Record<FailureKind, number>>
  /** sources remembered; beyond it the least recently used idle ones are forgotten (default 1024) */
  maxSources?: number
  now?: () => number
}

export interface TransferSample {
  /** bytes received */
  bytes: number
  /** ms from sending the request to its response headers */
  ttfbMs: number
  /** ms from sending the request to its last byte */
  totalMs: number
  /** requests in flight at that source when this one ended, itself included (default 1) */
  concurrent?: number
}

/** How a source is expected to perform; what the window size is computed from. */
export interface SourceEstimate {
  rttMs: number
  /** bytes per ms, all of the source's requests together */
  throughput: number
}

export interface SourceScore extends SourceEstimate {
  id: string
  /** transfers measured so far */
  samples: number
  /** light probes (have-bitmap round trips) measured so far */
  probes: number
  inflight: number
  queuedBytes: number
  /** ms of delay currently charged for recent failures */
  penaltyMs: number
  failures: Record<FailureKind, number>
  /** bytes received from it in total */
  bytes: number
}

/** What the scheduler needs from a scoreboard; a narrow interface so policies can be fed stand-ins. */
export interface FinishEstimator {
  /** ms until `bytes` more from `source` would be done, given what is queued there plus `extraQueuedBytes`. */
  expectedFinish (source: string, bytes: number, extraQueuedBytes?: number): number
}

interface Entry {
  rttMs: number
  throughput: number
  samples: number
  probes: number
  inflight: number
  queuedBytes: number
  penalty: number
  penaltyAt: number
  failures: Record<FailureKind, number>
  bytes: number
}

/** Below this, a decayed penalty counts as gone: the source is trusted again. */
const PENALTY_FLOOR_MS = 1

export class Scoreboard implements FinishEstimator {
  private readonly entries = new Map<string, Entry>()
  private readonly alpha: number
  private readonly initialRttMs: number
  private readonly initialThroughput: number
  private readonly halfLifeMs: number
  private readonly penalties: Record<FailureKind, number>
  private readonly maxSources: number
  private readonly now: () => number

  constructor (init: ScoreboardInit = {}) {
    this.alpha = init.alpha ?? 0.3
    this.initialRttMs = init.initialRttMs ?? 20
    this.initialThroughput = init.initialThroughput ?? 10_000
    this.halfLifeMs = init.penaltyHalfLifeMs ?? 5000
    this.penalties = withDefaults<Partial<Record<FailureKind, number>>>({ error: 2000, timeout: 4000, hash: 15_000, slow: 1000 }, init.penalties) as Record<FailureKind, number>
    this.maxSources = init.maxSources ?? 1024
    this.now = init.now ?? (() => performance.now())
  }

  /** A request for `bytes` was sent to `source`. */
  begin (source: string, bytes: number): void {
    const e = this.entry(source)
    e.inflight++
    e.queuedBytes += bytes
  }

  /** The request begun with `begin` ended, whatever its outcome. */
  end (source: string, bytes: number): void {
    const e = this.entry(source)
    e.inflight = Math.max(0, e.inflight - 1)
    e.queuedBytes = Math.max(0, e.queuedBytes - bytes)
  }

  recordSuccess (source: string, s: TransferSample): void {
    const e = this.entry(source)
    const rtt = Math.max(0, s.ttfbMs)
    // Body time floors at 1 ms: on loopback a small chunk can arrive within
    // the clock's resolution, and an infinite rate would swamp the average.
    const bodyMs = Math.max(1, s.totalMs - s.ttfbMs)
    // Parallel requests to one source share its bandwidth, so one request's
    // rate times the number in flight approximates what the source delivers.
    const rate = s.bytes / bodyMs * Math.max(1, s.concurrent ?? 1)
    if (e.samples === 0) {
      // A probe's RTT is kept as history; the throughput had no measurement before.
      e.rttMs = e.probes === 0 ? rtt : e.rttMs + this.alpha * (rtt - e.rttMs)
      e.throughput = rate
    } else {
      e.rttMs += this.alpha * (rtt - e.rttMs)
      e.throughput += this.alpha * (rate - e.throughput)
    }
    e.samples++
    e.bytes += s.bytes
  }

  /**
   * A cheap round trip to a source (its have-bitmap answer), so the first
   * choice among sources never used is not blind: a far or loaded source
   * shows a longer RTT before any chunk is risked on it.
   */
  recordProbe (source: string, rttMs: number): void {
    if (!Number.isFinite(rttMs) || rttMs < 0) return
    const e = this.entry(source)
    e.rttMs = e.samples === 0 && e.probes === 0 ? rttMs : e.rttMs + this.alpha * (rttMs - e.rttMs)
    e.probes++
  }

  recordFailure (source: string, kind: FailureKind): void {
    const e = this.entry(source)
    const now = this.now()
    e.penalty = this.decayed(e, now) + this.penalties[kind]
    e.penaltyAt = now
    e.failures[kind]++
  }

  penaltyMs (source: string): number {
    const e = this.entries.get(source)
    return e == null ? 0 : this.decayed(e, this.now())
  }

  inflight (source: string): number {
    return this.entries.get(source)?.inflight ?? 0
  }

  /**
   * A source never measured is assumed as good as the average measured one,
   * so a newcomer gets tried instead of starving behind the first source that
   * happened to answer; its probed RTT, when there is one, replaces the guess.
   */
  estimate (source: string): SourceEstimate {
    const e = this.entries.get(source)
    if (e != null && e.samples > 0) return { rttMs: e.rttMs, throughput: e.throughput }
    const probed = e != null && e.probes > 0 ? e.rttMs : undefined
    let n = 0
    let rtt = 0
    let thr = 0
    for (const other of this.entries.values()) {
      if (other.samples === 0) continue
      n++
      rtt += other.rttMs
      thr += other.throughput
    }
    if (n === 0) return { rttMs: probed ?? this.initialRttMs, throughput: this.initialThroughput }
    return { rttMs: probed ?? rtt / n, throughput: thr / n }
  }

  expectedFinish (source: string, bytes: number, extraQueuedBytes = 0): number {
    const { rttMs, throughput } = this.estimate(source)
    const queued = (this.entries.get(source)?.queuedBytes ?? 0) + extraQueuedBytes
    return rttMs + (queued + bytes) / Math.max(throughput, 1e-6) + this.penaltyMs(source)
  }

  snapshot (): SourceScore[] {
    const now = this.now()
    return [...this.entries].map(([id, e]) => ({
      id,
      ...this.estimate(id),
      samples: e.samples,
      probes: e.probes,
      inflight: e.inflight,
      queuedBytes: e.queuedBytes,
      penaltyMs: this.decayed(e, now),
      failures: { ...e.failures },
      bytes: e.bytes
    }))
  }

  private decayed (e: Entry, now: number): number {
    if (e.penalty === 0) return 0
    const p = e.penalty * Math.pow(0.5, Math.max(0, now - e.penaltyAt) / this.halfLifeMs)
    return p < PENALTY_FLOOR_MS ? 0 : p
  }

  private entry (source: string): Entry {
    let e = this.entries.get(source)
    if (e == null) {
      e = { rttMs: this.initialRttMs, throughput: this.initialThroughput, samples: 0, probes: 0, inflight: 0, queuedBytes: 0, penalty: 0, penaltyAt: 0, failures: { error: 0, timeout: 0, hash: 0, slow: 0 }, bytes: 0 }
      this.entries.set(source, e)
      if (this.entries.size > this.maxSources) this.forgetIdle(source)
    } else {
      // Map order is recency order, so the least recently used source is forgotten first.
      this.entries.delete(source)
      this.entries.set(source, e)
    }
    return e
  }

  /** A proxy running for months meets many sources; those idle longest are dropped (they are re-learned if they come back). */
  private forgetIdle (keep: string): void {
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.maxSources) return
      if (e.inflight === 0 && id !== keep) this.entries.delete(id)
    }
  }
}
