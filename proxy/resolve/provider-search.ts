/**
 * The DHT's side of a resolution: providers of a content, kept apart by
 * whether the pool vouches for them, found while the manager is asked.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { CID } from 'multiformats/cid'
import type { Logger } from '../../core/log.ts'
import type { DeadlineClock } from '../fetch/deadline.ts'
import type { SourceAddress } from './sources.ts'

/** Content routing as the resolver sees it: who provides a content id, with their data-plane URLs. */
export interface ProviderFinder {
  findProviders (cid: CID, options: { signal: AbortSignal }): AsyncIterable<SourceAddress>
}

/** Where a source was learned: the manager's answer (its holders) or a DHT provider record. */
export type SourceOrigin = 'manager' | 'dht'

/** Which sources the pool vouches for (node-list.ts); the resolver fetches from no other. */
export interface SourceVouching {
  /** The source as the pool vouches for it (with the address the pool gives), or undefined when it does not. */
  judge (source: SourceAddress, from: SourceOrigin): SourceAddress | undefined
  /** Sources it does not know turned up: asks for a fresher word, rate-limited; true when it changed. */
  refreshForUnknown (signal: AbortSignal): Promise<boolean>
  /** Counts and logs a source left out. */
  ignored (source: SourceAddress, from: SourceOrigin): void
}

export interface ProviderSearchComponents {
  /** absent: nothing is searched (tests that feed sources through the manager's hint) */
  providers?: ProviderFinder
  /** absent: every provider found is used */
  vouching?: SourceVouching
  deadlines: DeadlineClock
  logger: Logger
}

export interface ProviderSearchInit {
  /** ms the DHT is asked for providers */
  providerTimeoutMs: number
  /** providers taken from the DHT */
  maxProviders: number
}

export interface ProviderSearch {
  /** vouched-for providers found so far; grows while the search runs */
  found: SourceAddress[]
  /** providers the pool's list did not vouch for when they were found */
  doubtful: SourceAddress[]
  /** settles (never rejects) when the search ended */
  done: Promise<void>
  /** settles when the first provider was found or the search ended */
  first: Promise<void>
  /** waits for the search to end, or at most `ms` */
  settle: (ms: number) => Promise<void>
  stop: () => void
}

/** Starts asking the DHT who provides `cid`; runs until it ends, `stop()`, the parent signal or its own deadline. */
export function searchProviders (c: ProviderSearchComponents, cid: CID, parent: AbortSignal, o: ProviderSearchInit): ProviderSearch {
  const found: SourceAddress[] = []
  const doubtful: SourceAddress[] = []
  const providers = c.providers
  if (providers == null) return { found, doubtful, done: Promise.resolve(), first: Promise.resolve(), settle: async () => {}, stop: () => {} }
  const vouching = c.vouching
  const stopper = new AbortController()
  let onFirst = (): void => {}
  const firstFound = new Promise<void>((resolve) => { onFirst = resolve })
  const deadline = c.deadlines.start(o.providerTimeoutMs, AbortSignal.any([parent, stopper.signal]))
  const done = (async () => {
    try {
      for await (const p of providers.findProviders(cid, { signal: deadline.signal })) {
        // Records from peers the pool does not vouch for fill no slot: a stranger's flood cannot crowd out the nodes.
        const ok = vouching == null ? p : vouching.judge(p, 'dht')
        if (ok == null) {
          if (doubtful.length < o.maxProviders) doubtful.push(p)
          else vouching?.ignored(p, 'dht')
          continue
        }
        found.push(ok)
        onFirst()
        if (found.length >= o.maxProviders) break
      }
    } catch (err) {
      // Running out of time is how a DHT search normally ends; only a real failure is worth a line.
      if (!deadline.signal.aborted) c.logger.warn({ err, id: cid.toString() }, 'DHT provider search failed')
    } finally {
      deadline.clear()
    }
  })()
  return {
    found,
    doubtful,
    done,
    first: Promise.race([done, firstFound]),
    settle: async (ms) => {
      const timer = new AbortController()
      await Promise.race([done, sleep(ms, undefined, { signal: timer.signal }).catch(() => {})])
      timer.abort()
    },
    stop: () => { stopper.abort() }
  }
}
