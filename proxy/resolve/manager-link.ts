import { describeError } from '../../core/errors.ts'
import { dialBootstrap, type Host } from '../../core/host.ts'
import type { Logger } from '../../core/log.ts'
import { signerOf, type CallOptions, type ManagerInfo } from './manager-client.ts'
import { retryLoop } from './retry-loop.ts'

export interface ManagerLinkComponents {
  manager: { info (options?: CallOptions): Promise<ManagerInfo> }
  host: Host
  logger: Logger
  /** told each answer of the manager, e.g. to remember its identity for when it is away */
  onInfo?: (info: ManagerInfo) => void
  /** told when the manager was dialled anew, e.g. to fill the DHT routing table through it */
  onConnected?: () => void
}

export interface ManagerLinkInit {
  /** ms before the first retry while the manager is unreachable; doubles up to checkMs (default 2 s) */
  retryMs?: number
  /** ms between checks once it was reached (default 30 s) */
  checkMs?: number
}

/**
 * Keeps the proxy tied to its manager: learns the manager's identity (whose
 * manifest signatures to trust) and libp2p addresses from `/api/info`, and
 * keeps a connection to it so the DHT has an entry point. As a chore it
 * retries until the manager answers, so a proxy started first, or one that
 * outlives a manager restart, catches up on its own.
 */
export class ManagerLink {
  private readonly c: ManagerLinkComponents
  private readonly retryMs: number
  private readonly checkMs: number
  private readonly stopping = new AbortController()
  private loop: Promise<void> | undefined
  private current: ManagerInfo | undefined
  private attempted: () => void = () => {}
  /** Settles after the first attempt to reach the manager, whatever its outcome. */
  readonly firstAttempt: Promise<void> = new Promise((resolve) => { this.attempted = resolve })

  constructor (components: ManagerLinkComponents, init: ManagerLinkInit = {}) {
    this.c = components
    this.retryMs = init.retryMs ?? 2000
    this.checkMs = init.checkMs ?? 30_000
  }

  get info (): ManagerInfo | undefined {
    return this.current
  }

  /**
   * The peer ids whose signatures are trusted: the pool's (or, from a manager
   * older than pools of several managers, that manager's own); undefined
   * until a manager answered once.
   */
  trusted (): string[] | undefined {
    return this.current == null ? undefined : [signerOf(this.current)]
  }

  /** One attempt: ask for the manager's info and dial it if not connected. Throws when the manager does not answer. */
  async connect (signal?: AbortSignal): Promise<ManagerInfo> {
    try {
      return await this.attempt(signal)
    } finally {
      this.attempted()
    }
  }

  private async attempt (signal?: AbortSignal): Promise<ManagerInfo> {
    const info = await this.c.manager.info({ signal })
    if (this.current != null && signerOf(this.current) !== signerOf(info)) {
      this.c.logger.warn({ was: signerOf(this.current), now: signerOf(info) }, 'the pool has a new identity')
    } else if (this.current != null && this.current.peerId !== info.peerId) {
      // Another manager of the same pool answered: the one before is down or was left for it.
      this.c.logger.info({ was: this.current.peerId, now: info.peerId }, 'now talking to another manager of the pool')
    }
    this.current = info
    try {
      this.c.onInfo?.(info)
    } catch (err) {
      this.c.logger.warn({ err }, 'manager info callback failed')
    }
    const connected = this.c.host.getConnections().some(conn => conn.remotePeer.toString() === info.peerId)
    if (!connected && info.multiaddrs.length > 0) {
      const { ok, failed } = await dialBootstrap(this.c.host, info.multiaddrs, signal ?? AbortSignal.timeout(10_000))
      if (ok.length === 0) this.c.logger.warn({ failed }, 'could not reach the manager over libp2p; DHT lookups find nothing until it is reachable')
      else {
        this.c.logger.debug({ ok }, 'connected to the manager')
        try {
          this.c.onConnected?.()
        } catch (err) {
          this.c.logger.warn({ err }, 'manager connection callback failed')
        }
      }
    }
    return info
  }

  /** Runs the chore in the background until stop(). Starting twice is harmless. */
  start (): void {
    this.loop ??= this.run()
  }

  async stop (): Promise<void> {
    this.stopping.abort()
    this.attempted()
    await this.loop
  }

  private async run (): Promise<void> {
    const signal = this.stopping.signal
    await retryLoop(async () => await this.connect(AbortSignal.any([signal, AbortSignal.timeout(10_000)])), {
      // After a successful connect() the first check can wait its turn.
      firstWaitMs: this.current == null ? 0 : this.checkMs,
      periodMs: this.checkMs,
      retryMs: this.retryMs,
      signal,
      onFailure: (err, failures) => {
        // A manager away for hours would otherwise fill the log every two seconds.
        if (failures === 0) this.c.logger.warn({ err: describeError(err) }, 'manager unreachable; retrying')
        else this.c.logger.debug({ err: describeError(err), failures }, 'manager still unreachable')
      },
      onRecovered: (failures) => { this.c.logger.info({ failures }, 'manager reachable again') }
    })
  }
}
