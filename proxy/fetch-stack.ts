import { generateKeyPair } from '@libp2p/crypto/keys'
import { createHost, type Host } from '../core/host.ts'
import type { Logger } from '../core/log.ts'
import { ChunkFetcher, type ChunkFetcherInit } from './chunk-fetcher.ts'
import { DeadlineClock } from './deadline.ts'
import { DhtProviderFinder } from './dht-providers.ts'
import { DefaultFetchEngine, type FetchEngineInit } from './fetch-engine.ts'
import { ManagerClient } from './manager-client.ts'
import { ManagerLink } from './manager-link.ts'
import type { FetchMetrics } from './metrics.ts'
import { Resolver, type ResolverInit } from './resolver.ts'
import { Scoreboard, type ScoreboardInit } from './scoreboard.ts'

export interface FetchStackInit {
  managerUrl: string
  logger: Logger
  metrics?: FetchMetrics
  /**
   * true: fail unless the manager answers now (a one-shot `cdn get`);
   * false: keep retrying in the background (a daemon, which must come up
   * even while the manager is away, for capability links).
   */
  requireManager: boolean
  signal?: AbortSignal
  fetcher?: ChunkFetcherInit
  resolver?: ResolverInit
  scoreboard?: ScoreboardInit
  engine?: FetchEngineInit
}

export interface FetchStack {
  engine: DefaultFetchEngine
  scoreboard: Scoreboard
  host: Host
  link: ManagerLink
  close (): Promise<void>
}

/**
 * Builds the viewer side, shared by the proxy daemon and the CLI: a DHT
 * client host with a throwaway identity, the manager link, the data-plane
 * fetcher, resolver, scoreboard and engine. Everything opened is closed in
 * reverse order, also when starting fails halfway.
 */
export async function startFetchStack (init: FetchStackInit): Promise<FetchStack> {
  const { logger } = init
  const child = (module: string): Logger => logger.child({ module })
  const closers: Array<{ name: string, close: () => Promise<void> | void }> = []
  const close = async (): Promise<void> => {
    while (closers.length > 0) {
      const c = closers.pop()
      if (c == null) break
      try {
        await c.close()
      } catch (err) {
        logger.warn({ err, part: c.name }, 'error while closing')
      }
    }
  }
  try {
    const deadlines = new DeadlineClock()
    closers.push({ name: 'deadlines', close: () => { deadlines.close() } })
    const manager = new ManagerClient({ deadlines }, { url: init.managerUrl })
    closers.push({ name: 'manager client', close: async () => { await manager.close() } })
    const fetcher = new ChunkFetcher({ deadlines, logger: child('fetcher') }, init.fetcher)
    closers.push({ name: 'chunk fetcher', close: async () => { await fetcher.close() } })
    // A proxy is a DHT client: nobody needs to find it, so its identity is thrown away on exit.
    const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), dhtServer: false })
    closers.push({ name: 'libp2p host', close: async () => { await host.stop() } })
    const link = new ManagerLink({ manager, host, logger: child('manager-link') })
    closers.push({ name: 'manager link', close: async () => { await link.stop() } })
    if (init.requireManager) await link.connect(init.signal)
    link.start()
    const scoreboard = new Scoreboard(init.scoreboard)
    const resolver = new Resolver({
      manager,
      providers: new DhtProviderFinder({ host, logger: child('dht') }),
      blobs: fetcher,
      haves: fetcher,
      deadlines,
      trusted: () => link.trusted(),
      logger: child('resolver')
    }, init.resolver)
    closers.push({ name: 'resolver', close: () => { resolver.close() } })
    const engine = new DefaultFetchEngine({ resolver, fetcher, scoreboard, reporter: manager, logger: child('engine'), metrics: init.metrics }, init.engine)
    closers.push({ name: 'fetch engine', close: async () => { await engine.close() } })
    return { engine, scoreboard, host, link, close }
  } catch (err) {
    await close()
    throw err
  }
}
