/**
 * The chore that keeps this node in the manager's pool: join with the join
 * token, then heartbeat on the manager's cadence; join again when the manager
 * no longer knows us (`ack.known === false`, e.g. after it restarted), and
 * retry failures with capped exponential backoff.
 *
 * Two answers end it for good: a join refused for its token (the operator
 * must fix the token; retrying changes nothing) and ERR_REMOVED (an operator
 * removed this node). The daemon learns which through `onEnd`. Each ack's
 * `drop` list is handed to `onDrop` before the next heartbeat, so what the
 * node holds converges on the catalog within a heartbeat.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { CdnError, describeError, ProtocolError, UnavailableError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import { ERR_REMOVED, parseAck, type Heartbeat, type JoinRequest, type NodeToManager } from '../core/wire.ts'

/** What the node reports about itself: a heartbeat's fields; `egressCap` absent means unlimited. */
export type NodeReport = Omit<Heartbeat, 'type'>

export interface ManagerLinkComponents {
  /** one control request to the manager, its reply (any shape: it is validated here) */
  call: (request: NodeToManager, signal: AbortSignal) => Promise<unknown>
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
}

/** A manager asking for a heartbeat every few µs would turn us into a busy loop. */
const MIN_HEARTBEAT_MS = 50

export class ManagerLink {
  private readonly c: ManagerLinkComponents
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

  constructor (components: ManagerLinkComponents, init: ManagerLinkInit) {
    this.c = components
    this.log = components.logger
    this.init = init
    this.retryMinMs = init.retryMinMs ?? 500
    this.retryMaxMs = init.retryMaxMs ?? 30_000
  }

  /** Times the manager accepted a join, heartbeats it acknowledged, contents it had dropped, and how the link ended (for status and tests). */
  get stats (): { joins: number, heartbeats: number, dropped: number, refused: boolean, removed: boolean } {
    return { joins: this.joinedCount, heartbeats: this.beats, dropped: this.dropped, refused: this.end?.kind === 'refused', removed: this.end?.kind === 'removed' }
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
          if (!await this.heartbeat(signal)) {
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
        const delay = this.backoff(failures)
        this.log.warn({ err: describeError(err), failures, retryInMs: delay }, interval == null ? 'joining the manager failed' : 'heartbeat failed')
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
  private backoff (failures: number): number {
    const base = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(failures - 1, 30))
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
    const reply = checkReply(await this.c.call(request, signal), 'joined')
    const asked = Number(reply.heartbeatMs)
    const interval = this.init.heartbeatMs ?? asked
    if (!Number.isFinite(interval) || interval <= 0) throw new ProtocolError(`manager sent an invalid heartbeat interval ${String(reply.heartbeatMs)}`)
    this.joinedCount++
    this.log.info({ heartbeatMs: interval }, 'joined the manager')
    return Math.max(MIN_HEARTBEAT_MS, interval)
  }

  /** False when the manager answered that it does not know us. */
  private async heartbeat (signal: AbortSignal): Promise<boolean> {
    const r = this.c.report()
    const request: Heartbeat = { type: 'heartbeat', ...r }
    const ack = parseAck(checkReply(await this.c.call(request, signal), 'ack'))
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
