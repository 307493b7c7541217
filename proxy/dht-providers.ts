import type { AbortOptions, ContentRouting, PeerId, PeerStore } from '@libp2p/interface'
import type { CID } from 'multiformats/cid'
import { httpUrlFromMultiaddrs } from '../core/host.ts'
import type { Logger } from '../core/log.ts'
import type { ProviderFinder } from './resolver.ts'
import type { SourceAddress } from './sources.ts'

/** The parts of a libp2p host a DHT provider search uses. */
export interface ProviderRoutingHost {
  contentRouting: Pick<ContentRouting, 'findProviders'>
  peerStore: Pick<PeerStore, 'get'>
  getConnections: () => unknown[]
}

/**
 * Finds the nodes providing a content id in the DHT and turns their provider
 * records into data-plane addresses: nodes announce their HTTP address as an
 * `/http` multiaddr, which comes back with the record.
 */
export class DhtProviderFinder implements ProviderFinder {
  private readonly host: ProviderRoutingHost
  private readonly logger: Logger

  constructor (components: { host: ProviderRoutingHost, logger: Logger }) {
    this.host = components.host
    this.logger = components.logger
  }

  async * findProviders (cid: CID, options: { signal: AbortSignal }): AsyncIterable<SourceAddress> {
    // Without a single peer the query cannot start, yet kad-dht would wait out the whole deadline.
    if (this.host.getConnections().length === 0) {
      this.logger.debug({ content: cid.toString() }, 'not connected to the DHT; no providers to find')
      return
    }
    const seen = new Set<string>()
    for await (const provider of this.host.contentRouting.findProviders(cid, { signal: options.signal })) {
      const id = provider.id.toString()
      if (seen.has(id)) continue
      seen.add(id)
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
