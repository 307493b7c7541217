/**
 * The chore that keeps this node in the manager's pool: join with the join
 * token, then heartbeat on the manager's cadence; join again when the manager
 * no longer knows us (`ack.known === false`, e.g. after it restarted), and
 * retry failures with capped exponential backoff.
 *
 * A pool may have several managers, and any of them takes any node's
 * heartbeats. The link talks to one at a time (the configured one first);
 * after a failure the retry goes to the next on the list, round robin, and
 * the backoff grows only once a whole round failed, so a node reaches a live
 * manager well before the pool would declare it dead. Every reply's pool
 * news goes to the directory (node/pool-managers.ts) before anything in the
 * reply is acted on.
 *
 * Two answers end it for good: a join refused for its token (the operator
 * must fix the token; retrying changes nothing) and ERR_REMOVED (an operator
 * removed this node). The daemon learns which through `onEnd`. Each ack's
 * `drop` list is handed to `onDrop` before the next heartbeat, so what the
 * node holds converges on the catalog within a heartbeat.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { CdnError, describeError, ProtocolError, TimeoutError, UnavailableError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import { ERR_REMOVED, parseAck, parsePoolNews, type Heartbeat, type JoinRequest, type NodeToManager, type PoolNews } from '../core/wire.ts'
import type { ManagerTarget } from './pool-managers.ts'

/** What the node reports about itself: a heartbeat's fields; `egressCap` absent means unlimited. */
export type NodeReport = Omit<Heartbeat, 'type'>

/** The managers to talk to, and where their pool news goes (node/pool-managers.ts). */
export interface ManagerDirectory {
  /** whom to heartbeat to, in failover order; never empty */
  targets: () => ManagerTarget[]
  /** takes a reply's pool news from `from`; a throw makes the call count as failed */
  learn: (news: PoolNews, from: string) => Promise<void>
}

export interface ManagerLinkComponents {
  /** one control request to `manager`, its reply (any shape: it is validated here) */
  call: (request: NodeToManager, signal: AbortSignal, manager: ManagerTarget) => Promise<unknown>
  /** default: one manager, whose pool news is ignored */
  managers?: ManagerDirectory
  /** the node's state now; called once per join or heartbeat (it resets the load meter) */
  report: () => NodeReport
  /** drops the held contents an ack named; awaited before the next heartbeat */
  onDrop?: (contents: string[], signal: AbortSignal) => Promise<unknown>
  /** the link ended for good: this node was removed, or its join token was refused */
  onEnd?: (end: LinkEnd) => void
  logger: Logger
}

/** Why the link stopped for good. */
export interface LinkEnd {
  kind: 'removed' | 'refused'
  /** the manager's explanation */
  message: string
}

/** Join refusals that no retry can fix: the token is wrong, revoked, expired or of the wrong role. */
const TOKEN_REFUSALS = new Set(['ERR_UNAUTHORIZED', 'ERR_FORBIDDEN'])

export interface ManagerLinkInit {
  joinToken: string
  zone?: string
  /** overrides the heartbeat interval the manager asks for */
  heartbeatMs?: number
  /** first retry delay after a failure (default 500 ms), doubled per failure up to `retryMaxMs` */
  retryMinMs?: number
  /** default 30 s */
  retryMaxMs?: number
  /** ms a heartbeat may take before the next manager is tried; default `heartbeatCallTimeout` */
  heartbeatCallMs?: number
}

/**
 * How long a heartbeat may take before the node gives up on that manager. A
 * manager gone without a word (no connection reset) must not hold the node
 * past the pool's dead-node deadline (3 intervals), even with another silent
 * one next on the list: with several managers, half an interval within
 * 1–15 s, so two silent managers and the retries between them still fit.
 * With one manager there is nobody to move to, so a slow answer is given the
 * whole interval, within 2–15 s.
 */
export function heartbeatCallTimeout (intervalMs: number, managers: number): number {
  return managers > 1 ? Math.min(15_000, Math.max(1_000, intervalMs / 2)) : Math.min(15_000, Math.max(2_000, intervalMs))
}

/** The directory of a link given none: the manager the call reaches, whatever it says of its pool. */
const ONE_MANAGER: ManagerDirectory = {
  targets: () => [{ peerId: 'manager', multiaddrs: [] }],
  learn: async () => {}
}

/** A manager asking for a heartbeat every few µs would turn us into a busy loop. */
const MIN_HEARTBEAT_MS = 50

export class ManagerLink {
  private readonly c: ManagerLinkComponents
  private readonly managers: ManagerDirectory
  private readonly log: Logger
  private readonly init: ManagerLinkInit
  private readonly retryMinMs: number
  private readonly retryMaxMs: number
  private controller?: AbortController
  private loop?: Promise<void>
  private joinedCount = 0
  private beats = 0
  private dropped = 0
  private end?: LinkEnd
  /** the manager talked to now */
  private target?: ManagerTarget

  constructor (components: ManagerLinkComponents, init: ManagerLinkInit) {
    this.c = components
    this.managers = components.managers ?? ONE_MANAGER
    this.log = components.logger
    this.init = init
    this.retryMinMs = init.retryMinMs ?? 500
    this.retryMaxMs = init.retryMaxMs ?? 30_000
  }

  /** Times the manager accepted a join, heartbeats it acknowledged, contents it had dropped, and how the link ended (for status and tests). */
  get stats (): { joins: number, heartbeats: number, dropped: number, refused: boolean, removed: boolean } {
    return { joins: this.joinedCount, heartbeats: this.beats, dropped: this.dropped, refused: this.end?.kind === 'refused', removed: this.end?.kind === 'removed' }
  }

  /** The peer id of the manager the link talks to now (the last one tried). */
  get manager (): string | undefined {
    return this.target?.peerId
  }

  start (): void {
    if (this.loop != null) return
    this.controller = new AbortController()
    const signal = this.controller.signal
    this.loop = this.run(signal).catch((err: unknown) => {
      if (!signal.aborted) this.log.error({ err: describeError(err) }, 'manager link stopped unexpectedly')
    })
  }

  async stop (): Promise<void> {
    this.controller?.abort(new UnavailableError('node stopping'))
    await this.loop
    this.loop = undefined
  }

  private async run (signal: AbortSignal): Promise<void> {
    let interval: number | undefined
    let failures = 0
    let waitFirst = false
    while (!signal.aborted) {
      try {
        if (interval == null) {
          interval = await this.join(signal)
          waitFirst = true
        } else {
          if (waitFirst) await sleep(interval, undefined, { signal })
          waitFirst = true
          if (!await this.heartbeat(signal, interval)) {
            this.log.info('manager no longer knows this node; joining again')
            interval = undefined
            continue
          }
        }
        failures = 0
      } catch (err) {
        if (signal.aborted) return
        const end = finalAnswer(err, interval == null)
        if (end != null) {
          // Retrying would only knock on a closed door.
          this.log.error({ err: describeError(err), end: end.kind }, end.kind === 'removed' ? 'this node was removed from the pool' : 'the manager refused the join token; no longer trying to join')
          this.end = end
          this.c.onEnd?.(end)
          return
        }
        failures++
        const failed = this.target?.peerId
        const managers = this.managers.targets()
        this.target = nextAfter(managers, failed)
        const delay = this.backoff(Math.ceil(failures / managers.length))
        this.log.warn({ err: describeError(err), manager: failed, next: this.target.peerId, failures, retryInMs: delay }, interval == null ? 'joining the manager failed' : 'heartbeat failed')
        // After a failed heartbeat, the retry is itself the next heartbeat.
        waitFirst = false
        try {
          await sleep(delay, undefined, { signal })
        } catch {
          return
        }
      }
    }
  }

  // Not p-retry: this loop never ends on success (a success only schedules the
  // next heartbeat), and after a failure the retry is the next heartbeat itself.
  /** `rounds`: failed rounds over the whole manager list, the current one included. */
  private backoff (rounds: number): number {
    const base = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(rounds - 1, 30))
    // Jitter keeps a pool of nodes restarted together from retrying in lockstep.
    return Math.round(base * (0.5 + Math.random() / 2))
  }

  private async join (signal: AbortSignal): Promise<number> {
    const r = this.c.report()
    const request: JoinRequest = {
      type: 'join',
      token: this.init.joinToken,
      http: r.http,
      capacity: r.capacity,
      ...(this.init.zone != null ? { zone: this.init.zone } : {}),
      ...(r.egressCap != null ? { egressCap: r.egressCap } : {})
    }
    const manager = this.current()
    const reply = checkReply(await this.c.call(request, signal, manager), 'joined')
    await this.managers.learn(parsePoolNews(reply), manager.peerId)
    const asked = Number(reply.heartbeatMs)
    const interval = this.init.heartbeatMs ?? asked
    if (!Number.isFinite(interval) || interval <= 0) throw new ProtocolError(`manager sent an invalid heartbeat interval ${String(reply.heartbeatMs)}`)
    this.joinedCount++
    this.log.info({ heartbeatMs: interval, manager: manager.peerId }, 'joined the manager')
    return Math.max(MIN_HEARTBEAT_MS, interval)
  }

  /** The manager to talk to: the one of the last call unless it failed, with its addresses as the directory knows them now. */
  private current (): ManagerTarget {
    const managers = this.managers.targets()
    this.target = managers.find(m => m.peerId === this.target?.peerId) ?? managers[0]
    return this.target
  }

  /** False when the manager answered that it does not know us. */
  private async heartbeat (signal: AbortSignal, interval: number): Promise<boolean> {
    const r = this.c.report()
    const request: Heartbeat = { type: 'heartbeat', ...r }
    const manager = this.current()
    const ms = this.init.heartbeatCallMs ?? heartbeatCallTimeout(interval, this.managers.targets().length)
    const ack = parseAck(checkReply(await callWithin(ms, signal, async (s) => await this.c.call(request, s, manager)), 'ack'))
    await this.managers.learn(ack, manager.peerId)
    if (!ack.known) return false
    this.beats++
    if (ack.drop.length > 0 && this.c.onDrop != null) {
      this.log.info({ contents: ack.drop.length }, 'the manager asks to drop contents it no longer keeps')
      try {
        await this.c.onDrop(ack.drop, signal)
        this.dropped += ack.drop.length
      } catch (err) {
        // The next ack names them again.
        if (!signal.aborted) this.log.error({ err: describeError(err) }, 'dropping contents failed')
      }
    }
    return true
  }
}

/** The manager after `failed` on the list, round robin; the first when `failed` is no longer listed. */
function nextAfter (managers: ManagerTarget[], failed: string | undefined): ManagerTarget {
  const i = managers.findIndex(m => m.peerId === failed)
  return managers[(i + 1) % managers.length]
}

/** Runs `call` with a deadline of its own, so one silent manager costs `ms`, not the whole call timeout. */
async function callWithin<T> (ms: number, signal: AbortSignal, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = AbortSignal.timeout(ms)
  try {
    return await call(AbortSignal.any([signal, deadline]))
  } catch (err) {
    if (deadline.aborted && !signal.aborted) throw new TimeoutError(`the manager did not answer within ${ms} ms`, { cause: err })
    throw err
  }
}

/** The refusals that end the link, or undefined for those worth retrying. */
function finalAnswer (err: unknown, joining: boolean): LinkEnd | undefined {
  if (!(err instanceof CdnError)) return undefined
  const message = err.message.replace(/^manager refused: /, '')
  if (err.code === ERR_REMOVED) return { kind: 'removed', message }
  if (joining && TOKEN_REFUSALS.has(err.code)) return { kind: 'refused', message }
  return undefined
}

function checkReply (reply: unknown, want: string): Record<string, unknown> {
  if (reply == null || typeof reply !== 'object') throw new ProtocolError('manager sent a reply that is not an object')
  const r = reply as Record<string, unknown>
  if (r.type === 'error') {
    throw new CdnError(`manager refused: ${String(r.message)}`, typeof r.code === 'string' ? r.code : 'ERR_INTERNAL', 502)
  }
  if (r.type !== want) throw new ProtocolError(`manager sent "${String(r.type)}" where "${want}" was expected`)
  return r
}
