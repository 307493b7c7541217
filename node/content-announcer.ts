/**
 * Announces held contents in the DHT (one provider record per content, not
 * per chunk) and withdraws them. kad-dht keeps our own provider records and
 * re-publishes them itself; withdrawing stops that.
 */
import type { AbortOptions } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'

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

export class ContentAnnouncer {
  private readonly routing: ProviderRouting
  private readonly log: Logger
  private readonly timeoutMs: number
  private readonly concurrency: number

  constructor (components: ContentAnnouncerComponents, init: ContentAnnouncerInit = {}) {
    this.routing = components.routing
    this.log = components.logger
    this.timeoutMs = init.timeoutMs ?? 30_000
    this.concurrency = init.concurrency ?? 4
  }

  /**
   * Publishes a provider record for `cid`; false (logged) when it could not
   * reach the DHT. kad-dht has stored our own record before trying, so its
   * reprovider retries later either way.
   */
  async announce (cid: CID, signal: AbortSignal): Promise<boolean> {
    try {
      await this.routing.provide(cid, { signal: AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]) })
      return true
    } catch (err) {
      this.log.warn({ content: cid.toString(), err: describeError(err) }, 'could not announce content in the DHT')
      return false
    }
  }

  /** Announces many contents with bounded concurrency; returns how many were announced. */
  async announceAll (cids: readonly CID[], signal: AbortSignal): Promise<number> {
    let next = 0
    let ok = 0
    const worker = async (): Promise<void> => {
      while (next < cids.length && !signal.aborted) {
        const cid = cids[next++]
        if (await this.announce(cid, signal)) ok++
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.concurrency, cids.length) }, worker))
    return ok
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
