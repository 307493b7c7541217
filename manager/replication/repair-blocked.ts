/**
 * Repair that cannot happen, said out loud. The replication policy counts
 * copies it could not place as "deferred" and moves on; an operator needs to
 * know why and what would fix it. This module reads the same pool snapshot
 * the policy reads and names the blocks:
 *
 *   - too-few-nodes: a chunk below its R has no live node left that does not
 *     already hold it ("65 chunks have 2 of 3 copies: 1 more node is needed");
 *   - disks-full: there are such nodes, but none has room for the chunk;
 *   - one-zone: the pool declares zones, yet every live node is in one of
 *     them, so copies cannot be spread across failure zones.
 *
 * A pure function decides; a small monitor turns changes into `repair-blocked`
 * / `repair-unblocked` events and a gauge, so the event log does not repeat
 * itself every round.
 */
import { Gauge, type Registry } from 'prom-client'
import type { Logger } from '../../core/log.ts'
import type { PolicyContent, PolicyNode } from './replication-policy.ts'

export type BlockReason = 'too-few-nodes' | 'disks-full' | 'one-zone'

export interface RepairBlock {
  reason: BlockReason
  /** chunks in this situation */
  chunks: number
  /** contents they belong to */
  contents: number
  /** healthy copies these chunks have */
  have: number
  /** copies they should have */
  want: number
  /** more live nodes (with room, in another zone) that would unblock them */
  nodesNeeded: number
  zone?: string
  /** one line for `cdn status` */
  message: string
}

export interface BlockInput {
  nodes: PolicyNode[]
  contents: PolicyContent[]
  minCopies: number
  /** a node above this share of its capacity takes no new copies */
  diskHighWater: number
  /** ms since the epoch: expired contents are about to go, not to be repaired */
  now: number
}

interface Group { reason: BlockReason, have: number, want: number, nodesNeeded: number, chunks: number, contents: Set<string>, zone?: string }

export function findRepairBlocks (input: BlockInput): RepairBlock[] {
  const byId = new Map(input.nodes.map(n => [n.peerId, n]))
  const alive = input.nodes.filter(n => n.state === 'alive')
  const room = (n: PolicyNode, size: number): boolean => n.capacity <= 0 || (n.used + size <= input.diskHighWater * n.capacity)
  const groups = new Map<string, Group>()
  const add = (g: Omit<Group, 'chunks' | 'contents'>, content: string): void => {
    const key = blockKey(g)
    const cur = groups.get(key) ?? { ...g, chunks: 0, contents: new Set<string>() }
    cur.have = Math.min(cur.have, g.have)
    cur.chunks++
    cur.contents.add(content)
    groups.set(key, cur)
  }
  const zone = soleLiveZone(input.nodes)

  for (const content of input.contents) {
    if (content.expiresAt != null && content.expiresAt <= input.now) continue
    const want = Math.max(content.base, input.minCopies)
    for (const chunk of content.chunks) {
      const bad = new Set(chunk.bad ?? [])
      const holders = new Set(chunk.holders)
      const have = chunk.holders.filter(p => { const n = byId.get(p); return n != null && n.state !== 'dead' && !bad.has(p) }).length
      if (zone != null && have > 0) add({ reason: 'one-zone', have, want, nodesNeeded: 1, zone }, content.id)
      if (have >= want) continue
      const missing = want - have
      // Placement never puts two copies of a chunk on one node, and never on a node that is leaving.
      const targets = alive.filter(n => !holders.has(n.peerId))
      if (targets.length < missing) {
        add({ reason: 'too-few-nodes', have, want, nodesNeeded: missing - targets.length }, content.id)
        continue
      }
      const roomy = targets.filter(n => room(n, chunk.size)).length
      if (roomy < missing) add({ reason: 'disks-full', have, want, nodesNeeded: missing - roomy }, content.id)
    }
  }
  return [...groups.values()].map(g => ({
    reason: g.reason,
    chunks: g.chunks,
    contents: g.contents.size,
    have: g.have,
    want: g.want,
    nodesNeeded: g.nodesNeeded,
    ...(g.zone != null ? { zone: g.zone } : {}),
    message: describe(g)
  })).sort((a, b) => b.chunks - a.chunks)
}

/** Blocks with the same key are one line; a one-zone block is one line whatever the copy counts. */
export function blockKey (b: Pick<RepairBlock, 'reason' | 'have' | 'want' | 'nodesNeeded' | 'zone'>): string {
  return b.reason === 'one-zone' ? `one-zone:${String(b.zone)}` : `${b.reason}:${b.have}:${b.want}:${b.nodesNeeded}`
}

/** The one zone every live node is in, when nodes of the pool declare two or more zones. */
function soleLiveZone (nodes: PolicyNode[]): string | undefined {
  const declared = new Set(nodes.map(n => n.zone).filter((z): z is string => z != null && z !== ''))
  if (declared.size < 2) return undefined
  const live = nodes.filter(n => n.state !== 'dead')
  const zones = new Set(live.map(n => n.zone ?? ''))
  if (zones.size !== 1 || live.length === 0) return undefined
  const [only] = zones
  return only === '' ? undefined : only
}

function plural (n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`
}

function describe (g: Group): string {
  const chunks = `${plural(g.chunks, 'chunk has', 'chunks have')} ${g.have} of ${g.want} copies`
  switch (g.reason) {
    case 'too-few-nodes': return `${chunks}: ${plural(g.nodesNeeded, 'more node is', 'more nodes are')} needed`
    case 'disks-full': return `${chunks}: the nodes that could take them are full (${plural(g.nodesNeeded, 'more node', 'more nodes')} with free disk needed)`
    case 'one-zone': return `${plural(g.chunks, 'chunk has', 'chunks have')} every copy in zone ${String(g.zone)}: a live node in another zone is needed`
  }
}

export interface RepairBlockedComponents {
  /** where `repair-blocked` and `repair-unblocked` events go */
  events: { recordEvent: (e: { kind: 'repair-blocked' | 'repair-unblocked', detail?: Record<string, unknown> }) => Promise<void> | void }
  registry: Registry
  logger: Logger
}

/** Keeps the last verdict, reports changes as events and keeps `cdn_manager_repair_blocked_chunks{reason}` current. */
export class RepairBlockedMonitor {
  private readonly c: RepairBlockedComponents
  private readonly gauge: Gauge<'reason'>
  private last = new Map<string, RepairBlock>()
  current: RepairBlock[] = []

  constructor (components: RepairBlockedComponents) {
    this.c = components
    this.gauge = new Gauge({ name: 'cdn_manager_repair_blocked_chunks', help: 'Chunks below their copies that cannot be repaired now, by reason (too-few-nodes, disks-full, one-zone)', labelNames: ['reason'], registers: [components.registry] })
    for (const reason of ['too-few-nodes', 'disks-full', 'one-zone']) this.gauge.set({ reason }, 0)
  }

  async observe (input: BlockInput): Promise<RepairBlock[]> {
    const blocks = findRepairBlocks(input)
    const next = new Map(blocks.map(b => [blockKey(b), b]))
    const started = [...next].filter(([key]) => !this.last.has(key)).map(([, b]) => b)
    const ended = this.last.size > 0 && next.size === 0
    // The verdict is kept before the events are written, so a round that overlaps this one reports nothing twice.
    const perReason: Record<string, number> = { 'too-few-nodes': 0, 'disks-full': 0, 'one-zone': 0 }
    for (const b of blocks) perReason[b.reason] += b.chunks
    for (const [reason, n] of Object.entries(perReason)) this.gauge.set({ reason }, n)
    this.last = next
    this.current = blocks
    for (const b of started) {
      const { message, ...detail } = b
      await this.c.events.recordEvent({ kind: 'repair-blocked', detail: { ...detail, message } })
      this.c.logger.warn({ ...detail }, `repair blocked: ${message}`)
    }
    if (ended) {
      await this.c.events.recordEvent({ kind: 'repair-unblocked', detail: {} })
      this.c.logger.info('repair is no longer blocked')
    }
    return blocks
  }
}
