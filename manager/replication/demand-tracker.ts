/**
 * The demand signal of the replication controller: what each node says, on
 * each heartbeat, it served per content (bytes/s, requests/s) and in total.
 *
 * One heartbeat covers one short interval, so the raw figures jump around
 * (a few big chunk transfers either fell into the interval or not). Each
 * figure is smoothed per node with an exponentially weighted moving average,
 * which is what keeps mirror and trim decisions from flapping on noise; the
 * pool's demand for a content is the sum over the nodes that still report.
 * It is kept in memory; with several managers, each node's averages also
 * travel through the catalog (shared-demand.ts), since a node reports to
 * one manager while another may run the controller.
 */
import type { ContentLoad } from '../../core/wire.ts'

export interface DemandTrackerInit {
  /** weight of the newest report in the average, in (0, 1] (default 0.5) */
  smoothing?: number
  /** ms after which a node's last report no longer counts (a silent node serves nothing); default 15 s */
  staleMs?: number
}

interface NodeDemand {
  at: number
  egressRate: number
  contents: Map<string, ContentLoad>
}

/** One node's averages as plain data, to store and adopt elsewhere. */
export interface NodeDemandState {
  /** ms since the epoch of the report folded last */
  at: number
  egressRate: number
  contents: Record<string, ContentLoad>
}

/** Below these, a smoothed figure is noise and is dropped (keeps the maps small). */
const NEGLIGIBLE_BYTES = 1
const NEGLIGIBLE_REQUESTS = 0.001

export class DemandTracker {
  private readonly alpha: number
  private readonly staleMs: number
  private readonly nodes = new Map<string, NodeDemand>()

  constructor (init: DemandTrackerInit = {}) {
    this.alpha = Math.min(1, Math.max(0.01, init.smoothing ?? 0.5))
    this.staleMs = init.staleMs ?? 15_000
  }

  /** Folds one heartbeat's figures into the node's averages. Contents it did not list served nothing. */
  record (node: string, report: { egressRate: number, contents: Record<string, ContentLoad> }, now: number): void {
    const before = this.nodes.get(node)
    const a = this.alpha
    const smooth = (fresh: number, old: number | undefined): number => old == null ? fresh : a * fresh + (1 - a) * old
    const contents = new Map<string, ContentLoad>()
    const ids = new Set([...Object.keys(report.contents), ...(before?.contents.keys() ?? [])])
    for (const id of ids) {
      const fresh = report.contents[id] ?? { requests: 0, bytes: 0 }
      const old = before?.contents.get(id)
      const bytes = smooth(fresh.bytes, old?.bytes ?? (before == null ? undefined : 0))
      const requests = smooth(fresh.requests, old?.requests ?? (before == null ? undefined : 0))
      if (bytes >= NEGLIGIBLE_BYTES || requests >= NEGLIGIBLE_REQUESTS) contents.set(id, { bytes, requests })
    }
    this.nodes.set(node, { at: now, egressRate: smooth(report.egressRate, before?.egressRate), contents })
  }

  /** A node's averages as plain data; undefined when it never reported here. */
  exportNode (node: string): NodeDemandState | undefined {
    const d = this.nodes.get(node)
    return d == null ? undefined : { at: d.at, egressRate: d.egressRate, contents: Object.fromEntries(d.contents) }
  }

  /** Takes averages folded elsewhere when they are newer than ours (the node reported to another manager since). */
  adopt (node: string, state: NodeDemandState): void {
    const d = this.nodes.get(node)
    if (d != null && d.at >= state.at) return
    this.nodes.set(node, { at: state.at, egressRate: state.egressRate, contents: new Map(Object.entries(state.contents)) })
  }

  /** Drops a node's figures (it died or left). */
  forget (node: string): void {
    this.nodes.delete(node)
  }

  /** The node's smoothed egress, or undefined when it has not reported lately. */
  egressOf (node: string, now: number): number | undefined {
    const d = this.nodes.get(node)
    return d == null || now - d.at > this.staleMs ? undefined : d.egressRate
  }

  /** Pool-wide smoothed demand per content, from nodes that reported lately. */
  byContent (now: number): Map<string, ContentLoad> {
    const out = new Map<string, ContentLoad>()
    for (const d of this.nodes.values()) {
      if (now - d.at > this.staleMs) continue
      for (const [id, load] of d.contents) {
        const sum = out.get(id) ?? { bytes: 0, requests: 0 }
        sum.bytes += load.bytes
        sum.requests += load.requests
        out.set(id, sum)
      }
    }
    return out
  }
}
