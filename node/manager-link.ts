/**
 * The chore that keeps this node in the manager's pool: join with the join
 * token, then heartbeat on the manager's cadence; join again when the manager
 * no longer knows us (`ack.known === false`, e.g. after it restarted), and
 * retry failures with capped exponential backoff.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { CdnError, describeError, ProtocolError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import type { Heartbeat, JoinRequest, NodeToManager } from '../core/wire.ts'

/** What the node reports about itself: a heartbeat's fields; `egressCap` absent means unlimited. */
export type NodeReport = Omit<Heartbeat, 'type'>

export interface ManagerLinkComponents {
  /** one control request to the manager, its reply (any shape: it is validated here) */
  call: (request: NodeToManager, signal: AbortSignal) => Promise<unknown>
  /** the node's state now; called once per join or heartbeat (it resets the load meter) */
  report: () => NodeReport
  logger: Logger
}

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
  private refused = false

  constructor (components: ManagerLinkComponents, init: ManagerLinkInit) {
    this.c = components
    this.log = components.logger
    this.init = init
    this.retryMinMs = init.retryMinMs ?? 500
    this.retryMaxMs = init.retryMaxMs ?? 30_000
  }

  /** Times the manager accepted a join, and heartbeats it acknowledged (for status and tests). */
  get stats (): { joins: number, heartbeats: number, refused: boolean } {
    return { joins: this.joinedCount, heartbeats: this.beats, refused: this.refused }
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
    this.controller?.abort(new Error('node stopping'))
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
        if (interval == null && err instanceof CdnError && err.code === 'ERR_FORBIDDEN') {
          // An operator removed this node from the pool: retrying would only knock on a closed door.
          this.log.error({ err: describeError(err) }, 'the manager refused this node; no longer trying to join')
          this.refused = true
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
    const reply = checkReply(await this.c.call(request, signal), 'ack')
    if (reply.known === false) return false
    this.beats++
    return true
  }
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
