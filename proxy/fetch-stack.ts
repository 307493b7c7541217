import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { deferClose } from '../core/closing.ts'
import { describeError } from '../core/errors.ts'
import { createHost, type Host } from '../core/host.ts'
import type { Logger } from '../core/log.ts'
import { ChunkCache } from './state/chunk-cache.ts'
import { ChunkFetcher, type ChunkFetcherInit } from './fetch/chunk-fetcher.ts'
import { DeadlineClock } from './fetch/deadline.ts'
import { DhtJoiner, knownDhtPeers, routingTableSize } from './resolve/dht-join.ts'
import { DhtProviderFinder } from './resolve/dht-providers.ts'
import { DefaultFetchEngine, type FetchEngineInit } from './fetch/fetch-engine.ts'
import { ManagerClient, signerOf, type ManagerApi, type ManagerInfo } from './resolve/manager-client.ts'
import { loggableUrl } from './capability.ts'
import { ManagerLink } from './resolve/manager-link.ts'
import type { FetchMetrics } from './metrics.ts'
import { PoolNodeList, type NodeListInit } from './resolve/node-list.ts'
import { NameRecords, type NameRecordsInit } from './resolve/name-records.ts'
import { PeerMemory } from './state/peer-memory.ts'
import { Resolver, type ResolverInit } from './resolve/resolver.ts'
import { Scoreboard, type ScoreboardInit } from './fetch/scoreboard.ts'

export interface FetchStackInit {
  /** the manager's API URL, or several managers of one pool, tried in this order (each call fails over) */
  managerUrl: string | readonly string[]
  /** PEM of a private CA for an https manager */
  ca?: Buffer
  logger: Logger
  metrics?: FetchMetrics
  /**
   * true: fail unless the manager answers now (a one-shot `cdn get`);
   * false: keep retrying in the background (a daemon, which must come up
   * even while the manager is away, for capability links).
   */
  requireManager: boolean
  signal?: AbortSignal
  /**
   * verified ciphertext chunks (and manifests) on disk, least recently used
   * evicted beyond `maxBytes`; replays and seeks back then cost no network
   * (default: no disk cache)
   */
  cache?: { dir: string, maxBytes: number }
  /**
   * where the manager's identity and the libp2p addresses of the nodes met
   * are remembered (`network.json`), so that with the manager down the proxy
   * still trusts its signatures and can join the DHT (default: nowhere)
   */
  stateDir?: string
  fetcher?: ChunkFetcherInit
  resolver?: ResolverInit
  nodeList?: Omit<NodeListInit, 'file'>
  names?: Omit<NameRecordsInit, 'file'>
  scoreboard?: ScoreboardInit
  engine?: FetchEngineInit
}

export interface FetchStack {
  engine: DefaultFetchEngine
  scoreboard: Scoreboard
  host: Host
  link: ManagerLink
  /** absent without `cache` */
  cache?: ChunkCache
  /** absent without `stateDir` */
  memory?: PeerMemory
  /** the nodes the pool vouches for */
  nodeList: PoolNodeList
  /** where the pool's names point, verified and kept (`names.json` in `stateDir`) */
  names: NameRecords
  close (): Promise<void>
}

/** ms between saves of the network state once something changed */
const SAVE_DELAY_MS = 1000
/** ms between looks at the peer store for DHT servers worth remembering */
const COLLECT_INTERVAL_MS = 60_000
/** ms to dial remembered peers and look up our own id */
const JOIN_TIMEOUT_MS = 10_000

/**
 * Builds the viewer side, shared by the proxy daemon and the CLI: a DHT
 * client host with a throwaway identity, the manager link, the data-plane
 * fetcher, the chunk cache, resolver, scoreboard and engine, and the memory
 * of the network that lets it work with the manager down. Everything opened
 * is closed in reverse order, also when starting fails halfway.
 */
export async function startFetchStack (init: FetchStackInit): Promise<FetchStack> {
  const { logger } = init
  const child = (part: string): Logger => logger.child({ part })
  const closers = new AsyncDisposableStack()
  const defer = (name: string, close: () => Promise<void> | void): void => { deferClose(closers, name, close, logger) }
  const close = async (): Promise<void> => { await closers.disposeAsync() }
  try {
    const deadlines = new DeadlineClock()
    defer('deadlines', () => { deadlines.close() })
    const manager = new ManagerClient({ deadlines }, { url: init.managerUrl, ca: init.ca })
    defer('manager client', async () => { await manager.close() })
    const fetcher = new ChunkFetcher({ deadlines, logger: child('fetcher') }, init.fetcher)
    defer('chunk fetcher', async () => { await fetcher.close() })
    let cache: ChunkCache | undefined
    if (init.cache != null) {
      const opened = new ChunkCache({ dir: init.cache.dir, maxBytes: init.cache.maxBytes, logger: child('cache') })
      await opened.open()
      defer('chunk cache', async () => { await opened.close() })
      cache = opened
    }
    let memory: PeerMemory | undefined
    if (init.stateDir != null) {
      memory = new PeerMemory({ file: join(init.stateDir, 'network.json'), logger: child('peer-memory') })
      await memory.load()
    }
    // A proxy is a DHT client: nobody needs to find it, so its identity is thrown away on exit.
    const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), dhtServer: false })
    defer('libp2p host', async () => { await host.stop() })
    const keeper = memory == null ? undefined : keepMemory(memory, host, child('peer-memory'))
    if (keeper != null) defer('network state', async () => { await keeper.close() })
    const joiner = new DhtJoiner({ host, logger: child('dht-join') }, { timeoutMs: JOIN_TIMEOUT_MS })
    defer('DHT joiner', async () => { await joiner.close() })
    const remembered = memory?.manager(manager.urls)
    if (memory != null) {
      // In the background: the manager, when up, is an entry point too, and no start waits on dead addresses.
      const peers = [...memory.nodes(), ...(remembered == null ? [] : [{ peerId: remembered.peerId, multiaddrs: remembered.multiaddrs }])]
      if (peers.length > 0) void joiner.join(peers)
    }
    let nodeList: PoolNodeList | undefined
    const link = new ManagerLink({
      manager,
      host,
      logger: child('manager-link'),
      onInfo: (info) => {
        // The managers the pool lists are tried too, after the configured ones: a proxy outlives the ones it was told about.
        if (info.managers != null) {
          const added = manager.learn(info.managers)
          if (added.length > 0) child('manager-link').info({ managers: added.map(loggableUrl) }, 'learned more managers of the pool')
        }
        keeper?.manager(manager.url, info)
        // The manager answered: a node list that could not be refreshed (or has expired) is fetched now.
        nodeList?.poke()
      },
      onConnected: () => { void joiner.lookup() }
    })
    defer('manager link', async () => { await link.stop() })
    // The live answer wins; the remembered identity stands in while the manager is away.
    const trusted = (): string[] | undefined => link.trusted() ?? (remembered == null ? undefined : [signerOf(remembered)])
    const list = new PoolNodeList({
      manager,
      trusted,
      logger: child('node-list'),
      onIgnored: (from) => { init.metrics?.unvouchedSources.inc({ from }) },
      ready: async () => { await link.firstAttempt }
    }, { file: init.stateDir == null ? undefined : join(init.stateDir, 'node-list.json'), ...init.nodeList })
    await list.load()
    nodeList = list
    list.start()
    defer('node list', async () => { await list.stop() })
    if (init.requireManager) await link.connect(init.signal)
    link.start()
    if (remembered != null) logger.info({ signer: signerOf(remembered) }, 'trusting the remembered pool identity until a manager answers')
    const names = new NameRecords({ manager, trusted, logger: child('names') }, { file: init.stateDir == null ? undefined : join(init.stateDir, 'names.json'), ...init.names })
    await names.load()
    defer('name records', async () => { await names.close() })
    const scoreboard = new Scoreboard(init.scoreboard)
    const managerApi: ManagerApi = keeper == null
      ? manager
      : {
          resolve: async (id, options) => {
            const r = await manager.resolve(id, options)
            if (r.holderPeers != null && r.holderPeers.length > 0) keeper.nodes(r.holderPeers)
            return r
          }
        }
    const resolver = new Resolver({
      manager: managerApi,
      providers: new DhtProviderFinder({
        host,
        routingTableSize: () => routingTableSize(host),
        joined: async () => {
          await link.firstAttempt
          await joiner.idle()
        },
        // Only vouched-for nodes become entry points for the next start.
        onProvider: keeper == null ? undefined : (p) => { if (list.lists(p.peerId)) keeper.nodes([p]) },
        logger: child('dht')
      }),
      blobs: fetcher,
      haves: fetcher,
      deadlines,
      cache,
      vouching: list,
      onProbe: (source, rttMs) => { scoreboard.recordProbe(source, rttMs) },
      trusted,
      logger: child('resolver')
    }, init.resolver)
    defer('resolver', () => { resolver.close() })
    const engine = new DefaultFetchEngine({ resolver, fetcher, scoreboard, cache, reporter: manager, logger: child('engine'), metrics: init.metrics }, init.engine)
    defer('fetch engine', async () => { await engine.close() })
    return { engine, scoreboard, host, link, cache, memory, nodeList: list, names, close }
  } catch (err) {
    await close()
    throw err
  }
}

interface MemoryKeeper {
  manager: (url: string, info: ManagerInfo) => void
  nodes: (peers: Array<{ peerId: string, multiaddrs: string[] }>) => void
  close: () => Promise<void>
}

/**
 * Feeds the peer memory and saves it: soon after it learns something, every
 * so often with the DHT servers the host met meanwhile (the routing table's
 * peers, not only providers), and a last time on close, before the host stops.
 */
function keepMemory (memory: PeerMemory, host: Host, logger: Logger): MemoryKeeper {
  let timer: NodeJS.Timeout | undefined
  let closed = false
  const saves = new Set<Promise<void>>()
  const save = async (collect: boolean): Promise<void> => {
    try {
      if (collect) memory.rememberNodes(await knownDhtPeers(host))
      await memory.save()
    } catch (err) {
      logger.warn({ err: describeError(err) }, 'could not save the network state')
    }
  }
  const track = (collect: boolean): void => {
    const p = save(collect).finally(() => { saves.delete(p) })
    saves.add(p)
  }
  const soon = (): void => {
    if (timer != null || closed) return
    timer = setTimeout(() => {
      timer = undefined
      track(true)
    }, SAVE_DELAY_MS)
    timer.unref()
  }
  const every = setInterval(() => { track(true) }, COLLECT_INTERVAL_MS)
  every.unref()
  return {
    manager: (url, info) => {
      memory.rememberManager(url, info)
      soon()
    },
    nodes: (peers) => {
      memory.rememberNodes(peers)
      soon()
    },
    close: async () => {
      closed = true
      clearInterval(every)
      if (timer != null) clearTimeout(timer)
      timer = undefined
      await Promise.allSettled([...saves])
      await save(true)
    }
  }
}
