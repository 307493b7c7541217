/**
 * Announces held contents in the DHT (one provider record per content, not
 * per chunk) and withdraws them. kad-dht keeps our own provider records and
 * re-publishes them itself; withdrawing stops that.
 */
import pLimit from 'p-limit'
import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import { withDefaults } from '../core/with-defaults.ts'

/** The part of libp2p's content routing this needs (`host.contentRouting`). */
export interface ProviderRouting {
  provide: (cid: CID, options?: AbortOptions) => Promise<void>
  cancelReprovide: (cid: CID, options?: AbortOptions) => Promise<void>
}

export interface ContentAnnouncerComponents {
  routing: ProviderRouting
  logger: Logger
}

export interface ContentAnnouncerInit {
  /** ms one provide may take (default 30 s) */
  timeoutMs?: number
  /** provides run at once when announcing many contents (default 4) */
  concurrency?: number
}

const ANNOUNCER_DEFAULTS: Required<ContentAnnouncerInit> = { timeoutMs: 30_000, concurrency: 4 }

export class ContentAnnouncer {
  private readonly routing: ProviderRouting
  private readonly log: Logger
  private readonly init: Required<ContentAnnouncerInit>

  constructor (components: ContentAnnouncerComponents, init: ContentAnnouncerInit = {}) {
    this.routing = components.routing
    this.log = components.logger
    this.init = withDefaults(ANNOUNCER_DEFAULTS, init)
  }

  /**
   * Publishes a provider record for `cid`; false (logged) when it could not
   * reach the DHT. kad-dht has stored our own record before trying, so its
   * reprovider retries later either way.
   */
  async announce (cid: CID, signal: AbortSignal): Promise<boolean> {
    try {
      await this.routing.provide(cid, { signal: AbortSignal.any([signal, AbortSignal.timeout(this.init.timeoutMs)]) })
      return true
    } catch (err) {
      this.log.warn({ content: cid.toString(), err: describeError(err) }, 'could not announce content in the DHT')
      return false
    }
  }

  /** Announces many contents with bounded concurrency; returns how many were announced. */
  async announceAll (cids: readonly CID[], signal: AbortSignal): Promise<number> {
    // Once aborted, the contents not yet started are skipped rather than each failing on its own.
    const announced = await pLimit(Math.max(1, this.init.concurrency)).map(cids, async cid => !signal.aborted && await this.announce(cid, signal))
    return announced.filter(Boolean).length
  }

  /** Stops re-publishing our record for `cid`; records already spread expire on their own. */
  async withdraw (cid: CID, signal: AbortSignal): Promise<void> {
    try {
      await this.routing.cancelReprovide(cid, { signal })
    } catch (err) {
      this.log.warn({ content: cid.toString(), err: describeError(err) }, 'could not withdraw content from the DHT')
    }
  }
}
