/**
 * What the console shows, as one JSON object: the pool's nodes, the
 * contents with their copies and demand, the replication health, the latest
 * events, and for a selected content its history with the moves marked.
 * Embedded in the page when it is served, then pushed every second.
 */
import type { Catalog, EventRow, NodeHoldings, NodeRow } from '../catalog/catalog.ts'
import type { ApiComponents } from '../api/api.ts'
import { contentJson, nodeJson } from '../api/wire.ts'
import type { ContentSeries, HistorySampler, RoundSample } from './history-sampler.ts'

export interface ConsoleDataComponents {
  catalog: Pick<Catalog, 'listNodes' | 'holdingsByNode' | 'listVisible' | 'listEvents' | 'replicationSummary'>
  nodeHealth: (n: NodeRow, holdings: NodeHoldings | undefined) => string
  replication: ApiComponents['replication']
  history: Pick<HistorySampler, 'series' | 'latest' | 'rounds'>
}

/** A move on a content's chart: when, what kind (mirror, trim, migrate, repair…), and on which node. */
export interface ChartMark {
  at: number
  kind: 'copies-added' | 'copies-removed' | 'copy-failed'
  reason: string
  node: string | null
  chunks: number
}

export interface ConsoleState {
  at: number
  nodes: Array<Record<string, unknown>>
  contents: Array<Record<string, unknown>>
  health: Record<string, unknown> & { rounds: readonly RoundSample[] }
  events: EventRow[]
  selected?: { id: string, series: ContentSeries, marks: ChartMark[] }
}

/** Events the console lists and reads marks from; the event API allows up to this many. */
export const CONSOLE_EVENTS = 200
const MARK_EVENTS = 1000
const ROUNDS_SHOWN = 120
const MARKED = new Set(['copies-added', 'copies-removed', 'copy-failed'])

export async function consoleState (c: ConsoleDataComponents, selected?: string, now = Date.now()): Promise<ConsoleState> {
  const holdings = await c.catalog.holdingsByNode()
  const nodes = (await c.catalog.listNodes()).map(n => {
    const h = holdings.get(n.peerId)
    return nodeJson(n, h, c.nodeHealth(n, h))
  })
  const visible = await c.catalog.listVisible()
  const contents = visible.map(x => {
    const last = c.history.latest(x.id)
    return { ...contentJson(x), demand: last?.demand ?? 0, wanted: last?.wanted ?? x.replicas }
  })
  const r = c.replication()
  const health = {
    ...(await c.catalog.replicationSummary(r.minCopies)),
    minCopies: r.minCopies,
    pendingActions: r.pendingActions,
    lastRound: r.lastRound,
    repairBlocked: r.repairBlocked ?? [],
    rounds: c.history.rounds().slice(-ROUNDS_SHOWN)
  }
  const events = await c.catalog.listEvents(CONSOLE_EVENTS)
  const state: ConsoleState = { at: now, nodes, contents, health, events }
  if (selected != null && visible.some(x => x.id === selected)) {
    state.selected = { id: selected, series: c.history.series(selected), marks: marksOf(await c.catalog.listEvents(MARK_EVENTS), selected) }
  }
  return state
}

/** The moves of one content, oldest first. */
export function marksOf (events: readonly EventRow[], content: string): ChartMark[] {
  const out: ChartMark[] = []
  for (const e of events) {
    if (e.content !== content || !MARKED.has(e.kind)) continue
    const d = e.detail ?? {}
    out.push({
      at: Date.parse(e.at),
      kind: e.kind as ChartMark['kind'],
      reason: typeof d.reason === 'string' ? d.reason : e.kind === 'copy-failed' ? 'failed' : 'other',
      node: e.node,
      chunks: typeof d.chunks === 'number' ? d.chunks : 0
    })
  }
  return out.reverse()
}
