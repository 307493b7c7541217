import type { Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { describeError } from '../../core/errors.ts'
import { DHT_PROTOCOL, parseMultiaddr, type Host } from '../../core/host.ts'
import type { Logger } from '../../core/log.ts'
import type { RememberedPeer } from '../state/peer-memory.ts'

/**
 * Peers in the host's DHT routing table. kad-dht's public type does not
 * expose its routing table, hence the narrow look; 0 if that ever changes.
 */
export function routingTableSize (host: Pick<Host, 'services'>): number {
  const dht = host.services.dht as { routingTable?: { size?: unknown } }
  const size = dht.routingTable?.size
  return typeof size === 'number' ? size : 0
}

/**
 * Dials remembered peers so the DHT routing table has entries without the
 * manager; a connected DHT server joins the table when identify reports its
 * protocols. Their addresses go into the peer store first, so the dial (and
 * later DHT queries) can reach them by peer id.
 */
export async function dialRemembered (host: Pick<Host, 'peerStore' | 'dial'>, peers: readonly RememberedPeer[], signal: AbortSignal): Promise<{ ok: string[], failed: Array<{ peer: string, error: string }> }> {
  const ok: string[] = []
  const failed: Array<{ peer: string, error: string }> = []
  await Promise.all(peers.map(async (p) => {
    try {
      const id = peerIdFromString(p.peerId)
      const multiaddrs: Multiaddr[] = []
      for (const a of p.multiaddrs) {
        if (a.endsWith('/http')) continue
        // A remembered address may carry its /p2p/ suffix; the peer store wants it bare.
        multiaddrs.push(parseMultiaddr(a.replace(/\/p2p\/[^/]+$/, '')))
      }
      await host.peerStore.merge(id, { multiaddrs }, { signal })
      await host.dial(id, { signal })
      ok.push(p.peerId)
    } catch (err) {
      failed.push({ peer: p.peerId, error: err instanceof Error ? err.message : String(err) })
    }
  }))
  return { ok, failed }
}

/** The DHT servers (nodes and the manager) the host has met, with their addresses: what is worth remembering. */
export async function knownDhtPeers (host: Pick<Host, 'peerStore'>): Promise<RememberedPeer[]> {
  const peers = await host.peerStore.all({ filters: [p => p.protocols.includes(DHT_PROTOCOL)] })
  return peers.map(p => ({ peerId: p.id.toString(), multiaddrs: p.addresses.map(a => a.multiaddr.toString()) }))
}

export interface DhtJoinerComponents {
  host: Pick<Host, 'peerStore' | 'dial' | 'peerId' | 'peerRouting' | 'services'>
  logger: Logger
}

export interface DhtJoinerInit {
  /** ms one join (dials and lookup together) may take (default 10 s) */
  timeoutMs?: number
}

/**
 * Fills the DHT routing table with nodes, not only the manager: the proxy
 * connects to the manager (or to remembered peers), then looks up its own
 * id, which walks to the nodes nearest to it and connects to them. Then a
 * dead manager leaves the routing table full of nodes, and provider searches
 * go on working. Joins run in the background; close() aborts them.
 */
export class DhtJoiner {
  private readonly c: DhtJoinerComponents
  private readonly timeoutMs: number
  private readonly stopping = new AbortController()
  private readonly tasks = new Set<Promise<void>>()

  constructor (components: DhtJoinerComponents, init: DhtJoinerInit = {}) {
    this.c = components
    this.timeoutMs = init.timeoutMs ?? 10_000
  }

  /** Dials remembered peers, then looks up our own id through whichever answered. */
  join (peers: readonly RememberedPeer[]): Promise<void> {
    return this.track(async (signal) => {
      const { ok, failed } = await dialRemembered(this.c.host, peers, signal)
      if (failed.length > 0) this.c.logger.debug({ failed }, 'remembered peers not reached')
      if (ok.length > 0) await this.lookupSelf(signal)
      this.c.logger.info({ remembered: peers.length, reached: ok.length, routingTable: routingTableSize(this.c.host) }, 'joined the DHT through remembered peers')
    })
  }

  /** Looks up our own id through the peers connected now (after the manager was dialled). */
  lookup (): Promise<void> {
    return this.track(async (signal) => {
      await this.lookupSelf(signal)
      this.c.logger.debug({ routingTable: routingTableSize(this.c.host) }, 'DHT routing table filled')
    })
  }

  /** Settles once every join started so far has ended. */
  async idle (): Promise<void> {
    await Promise.allSettled([...this.tasks])
  }

  async close (): Promise<void> {
    this.stopping.abort()
    await this.idle()
  }

  private track (work: (signal: AbortSignal) => Promise<void>): Promise<void> {
    if (this.stopping.signal.aborted) return Promise.resolve()
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.timeoutMs)])
    const task: Promise<void> = work(signal).catch((err: unknown) => {
      if (!this.stopping.signal.aborted) this.c.logger.warn({ err: describeError(err) }, 'joining the DHT failed')
    }).finally(() => { this.tasks.delete(task) })
    this.tasks.add(task)
    return task
  }

  private async lookupSelf (signal: AbortSignal): Promise<void> {
    // kad-dht connects to the peers it asks, and identify adds those that are DHT servers to the routing table.
    for await (const _ of this.c.host.peerRouting.getClosestPeers(this.c.host.peerId.toMultihash().bytes, { signal })) {
      // Only the walk matters; the peers it yields are already in the peer store.
    }
  }
}
