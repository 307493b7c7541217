/**
 * Operators' commands on nodes of a running pool: `cdn node drain` (with a
 * progress bar until the node holds nothing) and `cdn node rm`.
 */
import cliProgress from 'cli-progress'
import { setTimeout as sleep } from 'node:timers/promises'
import { BadInputError, CdnError, NotFoundError, TimeoutError } from '../core/errors.ts'
import { callManager, type ApiOptions } from './manager-api.ts'

export interface NodeView {
  peerId: string
  state: string
  copies: number
  contents: number
  health: string
}

export class NodeDeadError extends CdnError {
  constructor (message: string) { super(message, 'ERR_NODE_DEAD', 409) }
}

/**
 * Finds a node by its full peer id, a unique prefix or a unique suffix of it
 * (`cdn status` prints the shortest unique suffix), or the older
 * `12D3KooW…abc123` form.
 */
export async function resolvePeer (api: ApiOptions, text: string): Promise<NodeView> {
  const wanted = text.trim().replace('...', '…')
  if (wanted.length < 4) throw new BadInputError(`"${text}" is too short to name a node`)
  const { nodes } = await callManager(api, 'GET', '/api/nodes') as { nodes: NodeView[] }
  const exact = nodes.find(n => n.peerId === wanted)
  if (exact != null) return exact
  const [head, tail] = wanted.includes('…') ? wanted.split('…', 2) : [wanted, '']
  const matches = wanted.includes('…')
    ? nodes.filter(n => n.peerId.startsWith(head) && n.peerId.endsWith(tail))
    : nodes.filter(n => n.peerId.startsWith(wanted) || n.peerId.endsWith(wanted))
  if (matches.length === 1) return matches[0]
  if (matches.length === 0) throw new NotFoundError(`no node ${text} in the pool (see cdn status)`)
  throw new BadInputError(`"${text}" matches ${matches.length} nodes; give more of the peer id`)
}

/** ms without progress after which the drain explains what holds it up */
const STALL_NOTICE_MS = 15_000

export interface DrainOptions {
  /** wait until the node holds nothing (default true) */
  wait: boolean
  /** draw a progress bar on stderr (only on a terminal) */
  progress: boolean
  /** ms between polls (default 500) */
  pollMs?: number
  /** ms to wait at most; undefined waits as long as it takes */
  timeoutMs?: number
}

export interface DrainResult {
  peerId: string
  state: string
  /** copies the catalog still places on the node */
  copies: number
  drained: boolean
}

/** Progress of copies leaving a node, as a bar on a terminal and nothing elsewhere. */
function copiesBar (enabled: boolean): { update: (moved: number, total: number, left: number) => void, stop: () => void } {
  if (!enabled || process.stderr.isTTY !== true) return { update () {}, stop () {} }
  const bar = new cliProgress.SingleBar({
    stream: process.stderr,
    format: 'drain [{bar}] {percentage}% | {value}/{total} copies moved | {left} left',
    hideCursor: true,
    clearOnComplete: false
  }, cliProgress.Presets.shades_classic)
  let started = false
  return {
    update (moved, total, left) {
      if (!started) {
        bar.start(Math.max(total, 1), moved, { left })
        started = true
      }
      bar.setTotal(Math.max(total, 1))
      bar.update(moved, { left })
    },
    stop () { if (started) bar.stop() }
  }
}

/** Asks the manager to drain a node; then, unless told not to, waits until the node holds nothing. */
export async function drainNode (api: ApiOptions, text: string, opts: DrainOptions): Promise<DrainResult> {
  const node = await resolvePeer(api, text)
  await callManager(api, 'POST', `/api/nodes/${node.peerId}/drain`)
  if (!opts.wait) return { peerId: node.peerId, state: 'draining', copies: node.copies, drained: node.copies === 0 }
  const deadline = opts.timeoutMs != null ? Date.now() + opts.timeoutMs : Infinity
  const bar = copiesBar(opts.progress)
  let total = 0
  let left = Infinity
  let movedAt = Date.now()
  let warned = false
  try {
    for (;;) {
      const { nodes } = await callManager(api, 'GET', '/api/nodes') as { nodes: NodeView[] }
      const now = nodes.find(n => n.peerId === node.peerId)
      if (now == null) throw new NotFoundError(`node ${node.peerId} left the pool while draining`)
      total = Math.max(total, now.copies)
      bar.update(total - now.copies, total, now.copies)
      if (now.copies < left) {
        left = now.copies
        movedAt = Date.now()
      } else if (!warned && Date.now() - movedAt > STALL_NOTICE_MS) {
        // Say why nothing moves rather than leave the operator staring at a frozen bar.
        const health = await callManager(api, 'GET', '/api/health/replication')
        const deferred = Number(health.lastRound?.deferred ?? 0)
        if (deferred > 0) {
          warned = true
          process.stderr.write(`\ncdn: ${deferred} copies have nowhere to go yet (every other node is full, busy, or already holds them); add a node or free space, and the drain goes on\n`)
        }
      }
      if (now.copies === 0) return { peerId: node.peerId, state: now.state, copies: 0, drained: true }
      if (now.state === 'dead') {
        throw new NodeDeadError(`node ${node.peerId} is dead with ${now.copies} copies on it: repair re-creates them elsewhere; once no chunk needs it, remove it with cdn node rm`)
      }
      if (Date.now() > deadline) throw new TimeoutError(`node ${node.peerId} still holds ${now.copies} copies; it keeps draining (run cdn node drain again to watch)`)
      await sleep(opts.pollMs ?? 500, undefined, { signal: api.signal })
    }
  } finally {
    bar.stop()
  }
}

/** Removes a node from the pool; the manager refuses (409) while the pool still needs its copies. */
export async function removeNode (api: ApiOptions, text: string): Promise<{ peerId: string, removed: boolean }> {
  const node = await resolvePeer(api, text)
  const r = await callManager(api, 'DELETE', `/api/nodes/${node.peerId}`)
  return { peerId: String(r.peerId), removed: r.removed === true }
}
