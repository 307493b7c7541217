import type { AbortOptions, ContentRouting, PeerId, PeerStore } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { raceSignal } from 'race-signal'
import { httpUrlFromMultiaddrs } from '../../core/host.ts'
import type { Logger } from '../../core/log.ts'
import type { ProviderFinder } from './resolver.ts'
import type { SourceAddress } from './sources.ts'

/** The parts of a libp2p host a DHT provider search uses. */
export interface ProviderRoutingHost {
  contentRouting: Pick<ContentRouting, 'findProviders'>
  peerStore: Pick<PeerStore, 'get'>
  getConnections: () => unknown[]
}

export interface DhtProviderFinderComponents {
  host: ProviderRoutingHost
  /** peers in the DHT routing table (default 0: only live connections count) */
  routingTableSize?: () => number
  /**
   * settles once the first attempts to join the DHT (the manager, remembered
   * peers) have ended; a search started before waits for it rather than
   * finding nothing because the proxy was just started
   */
  joined?: () => Promise<void>
  /** told every provider found, with its libp2p addresses, so they can be remembered for when the manager is away */
  onProvider?: (peer: { peerId: string, multiaddrs: string[] }) => void
  logger: Logger
}

/** ms before a search that found nobody is tried again (doubling each time), and how many searches at most */
const RETRY_PAUSE_MS = 250
const MAX_SEARCHES = 5

/**
 * Finds the nodes providing a content id in the DHT and turns their provider
 * records into data-plane addresses: nodes announce their HTTP address as an
 * `/http` multiaddr, which comes back with the record.
 */
export class DhtProviderFinder implements ProviderFinder {
  private readonly host: ProviderRoutingHost
  private readonly c: DhtProviderFinderComponents
  private readonly logger: Logger

  constructor (components: DhtProviderFinderComponents) {
    this.c = components
    this.host = components.host
    this.logger = components.logger
  }

  async * findProviders (cid: CID, options: { signal: AbortSignal }): AsyncIterable<SourceAddress> {
    // Without a single peer the query cannot start, yet kad-dht would wait out the whole deadline.
    // Peers in the routing table count even when not connected right now (the manager went away, idle connections closed): the query dials them.
    const alone = (): boolean => this.host.getConnections().length === 0 && (this.c.routingTableSize?.() ?? 0) === 0
    if (alone() && this.c.joined != null) {
      try {
        await raceSignal(this.c.joined(), options.signal)
      } catch {
        return // the search's deadline passed while joining
      }
    }
    if (alone()) {
      this.logger.debug({ content: cid.toString() }, 'not connected to the DHT; no providers to find')
      return
    }
    const seen = new Set<string>()
    // A search right after a peer vanished can end at once on its stale routing entries: while nobody is
    // found, search again after a pause that doubles, until the caller's deadline or MAX_SEARCHES.
    for (let pass = 0; pass < MAX_SEARCHES && seen.size === 0 && !options.signal.aborted; pass++) {
      if (pass > 0) {
        try {
          await raceSignal(new Promise(resolve => setTimeout(resolve, RETRY_PAUSE_MS * 2 ** (pass - 1))), options.signal)
        } catch {
          return
        }
      }
      yield * this.search(cid, seen, options)
    }
  }

  private async * search (cid: CID, seen: Set<string>, options: { signal: AbortSignal }): AsyncIterable<SourceAddress> {
    for await (const provider of this.host.contentRouting.findProviders(cid, { signal: options.signal })) {
      const id = provider.id.toString()
      if (seen.has(id)) continue
      seen.add(id)
      this.c.onProvider?.({ peerId: id, multiaddrs: provider.multiaddrs.map(String) })
      const url = httpUrlFromMultiaddrs(provider.multiaddrs) ?? await this.knownHttpUrl(provider.id, options)
      if (url == null) {
        this.logger.debug({ peer: id, content: cid.toString() }, 'provider announced no HTTP address; skipped')
        continue
      }
      yield { id, url }
    }
  }

  /** A record may come without addresses; the peer store can still know them from identify. */
  private async knownHttpUrl (peer: PeerId, options: AbortOptions): Promise<string | undefined> {
    try {
      const known = await this.host.peerStore.get(peer, options)
      return httpUrlFromMultiaddrs(known.addresses.map(a => a.multiaddr))
    } catch (err) {
      this.logger.debug({ err, peer: peer.toString() }, 'provider unknown to the peer store')
      return undefined
    }
  }
}
