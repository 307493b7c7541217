/**
 * What the console's charts draw: each content's demand, copies and wanted
 * copies over time, and the move budget of each round. Fed once per
 * replication round with the round's own snapshot and decisions; held in
 * memory only (a restart starts a fresh history), bounded per content.
 */
import type { PoolSnapshot } from '../replication/pool-snapshot.ts'
import type { PolicyReport } from '../replication/policy-types.ts'

export interface ContentSample {
  /** ms since the epoch */
  t: number
  /** bytes/s served for it across the pool */
  demand: number
  /** fewest and most healthy copies (confirmed, on live nodes, not reported bad) of any of its chunks */
  min: number
  max: number
  /** copies the policy wants of each chunk, demand included */
  wanted: number
}

export interface RoundSample {
  t: number
  /** bytes the round's moves were allowed */
  budget: number
  /** bytes the round planned to copy */
  planned: number
  underReplicated: number
  deferred: number
}

export interface ContentSeries {
  t: number[]
  demand: number[]
  min: number[]
  max: number[]
  wanted: number[]
}

export interface HistorySamplerInit {
  /** samples kept per content and of rounds (default 720: two hours at the default 10 s round, six minutes at 500 ms) */
  maxSamples?: number
}

export class HistorySampler {
  private readonly byContent = new Map<string, ContentSample[]>()
  private readonly roundList: RoundSample[] = []
  private readonly maxSamples: number

  constructor (init: HistorySamplerInit = {}) {
    this.maxSamples = Math.max(2, init.maxSamples ?? 720)
  }

  /** One replication round; contents no longer in the pool are forgotten. */
  record (at: number, snapshot: Pick<PoolSnapshot, 'nodes' | 'contents'>, report: Pick<PolicyReport, 'wanted' | 'actions' | 'underReplicated' | 'deferred'>, budget: number): void {
    const live = new Set(snapshot.nodes.filter(n => n.state !== 'dead').map(n => n.peerId))
    const seen = new Set<string>()
    for (const c of snapshot.contents) {
      seen.add(c.id)
      let min = Infinity
      let max = 0
      for (const ch of c.chunks) {
        const bad = new Set(ch.bad ?? [])
        const n = ch.holders.filter(h => live.has(h) && !bad.has(h)).length
        min = Math.min(min, n)
        max = Math.max(max, n)
      }
      this.push(this.lane(c.id), { t: at, demand: c.demand, min: Number.isFinite(min) ? min : 0, max, wanted: report.wanted.get(c.id) ?? c.base })
    }
    for (const id of this.byContent.keys()) if (!seen.has(id)) this.byContent.delete(id)
    let planned = 0
    for (const a of report.actions) if (a.kind === 'copy') planned += a.size
    this.push(this.roundList, { t: at, budget, planned, underReplicated: report.underReplicated, deferred: report.deferred })
  }

  series (content: string): ContentSeries {
    const out: ContentSeries = { t: [], demand: [], min: [], max: [], wanted: [] }
    for (const s of this.byContent.get(content) ?? []) {
      out.t.push(s.t)
      out.demand.push(s.demand)
      out.min.push(s.min)
      out.max.push(s.max)
      out.wanted.push(s.wanted)
    }
    return out
  }

  latest (content: string): ContentSample | undefined {
    return this.byContent.get(content)?.at(-1)
  }

  rounds (): readonly RoundSample[] {
    return this.roundList
  }

  private lane (id: string): ContentSample[] {
    let lane = this.byContent.get(id)
    if (lane == null) this.byContent.set(id, lane = [])
    return lane
  }

  private push<T> (list: T[], item: T): void {
    list.push(item)
    if (list.length > this.maxSamples) list.splice(0, list.length - this.maxSamples)
  }
}
