/**
 * The distribution node: the one place that builds its parts from a config,
 * starts them in order and closes them in reverse.
 *
 *   blob store → content index → data plane (HTTP; its URL is announced)
 *   → libp2p host (DHT server) → pool managers → control endpoint → bootstrap dials
 *   → re-announce held contents → manager link → garbage collector
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { BandwidthLimiter } from '../core/bandwidth-limiter.ts'
import { rpcCall } from '../core/control-rpc.ts'
import { defaultAnnounceHost, firstTcpPort, httpBase, listenMultiaddr, splitAnnounce } from '../core/addresses.ts'
import { deferClose } from '../core/closing.ts'
import { BadInputError, describeError, UnavailableError } from '../core/errors.ts'
import { createHost, dialBootstrap, httpMultiaddr, loadOrCreateKey, parseMultiaddr, type Host } from '../core/host.ts'
import { parseContentId } from '../core/ids.ts'
import type { Logger } from '../core/log.ts'
import { createMetricsRegistry } from '../core/metrics.ts'
import { bindPlanned, PortBook } from '../core/ports.ts'
import { CONTROL_PROTOCOL, MAX_HELD, MAX_REPORTED_LOADS, type ContentLoad } from '../core/wire.ts'
import { BlobFetcher } from './blob-fetcher.ts'
import { BlobStore } from './blob-store.ts'
import { ContentAnnouncer } from './content-announcer.ts'
import { ContentIndex } from './content-index.ts'
import { ControlEndpoint } from './control-endpoint.ts'
import { DataPlane } from './data-plane.ts'
import { NODE_DEFAULTS } from './defaults.ts'
import { GarbageCollector } from './gc.ts'
import { LoadMeter } from './load-meter.ts'
import { ManagerLink, type LinkEnd, type NodeReport } from './manager-link.ts'
import { createNodeMetrics } from './node-metrics.ts'
import { OrderExecutor } from './order-executor.ts'
import { PoolManagers } from './pool-managers.ts'
import { checkNotRemoved, leaveDataDir } from './removal.ts'

export interface NodeConfig {
  dataDir: string
  /**
   * manager's libp2p multiaddr including /p2p/<peerId>: the node's first
   * heartbeat target, and the only manager it learns the pool id from; orders
   * are obeyed from it and from the managers on the list that pool signs
   */
  manager: string
  joinToken: string
  capacity: number            // bytes
  maxEgress: number           // bytes/s, Infinity = unlimited
  zone?: string
  httpHost?: string           // address the data plane and libp2p listen on (may be 0.0.0.0 or ::), default NODE_DEFAULTS.httpHost
  httpPort?: number           // default: the port this data directory used last (any free one if it is taken), else any
  p2pPort?: number            // libp2p TCP port on httpHost; same defaults as httpPort
  listen?: string[]           // explicit libp2p listen multiaddrs, instead of httpHost and p2pPort
  /**
   * what other hosts are told: `http://host:port` for the data plane (in
   * provider records and heartbeats), `/…` multiaddrs for libp2p, a bare
   * host for both. Default: the listen address, or this host's first
   * external interface address when listening on a wildcard.
   */
  announce?: string[]
  bootstrap?: string[]        // extra DHT peers (the manager is always one)
  heartbeatMs?: number        // default: what the manager's `joined` says
  gcGraceMs?: number          // default NODE_DEFAULTS.gcGraceMs
  /** when removed from the pool, keep the blobs on disk instead of deleting them */
  keepData?: boolean
  logger: Logger              // from core/log.ts
}

/** How a node ended on its own: removed by an operator, or its join token refused. */
export interface NodeEnd {
  kind: 'removed' | 'refused'
  /** one line for the operator */
  message: string
}

export interface NodeDaemon {
  peerId: string
  http: string
  multiaddrs: string[]
  /** settles when the node stopped on its own (removed, or join refused); it is then fully stopped */
  ended: Promise<NodeEnd>
  stop(): Promise<void>
}

/** ms a control call to the manager may take */
const CONTROL_CALL_TIMEOUT_MS = 15_000
/** The manager's replies (joined, ack with its drop list) are small; larger is no reply of a manager. */
const MAX_MANAGER_REPLY_BYTES = 1024 * 1024
/** The peer id inside a `/p2p/<id>` multiaddr. */
function managerPeerIdOf (addr: string): string {
  const id = parseMultiaddr(addr).getComponents().find(c => c.name === 'p2p')?.value
  if (id == null) throw new BadInputError(`manager address "${addr}" has no /p2p/<peerId> part; it is needed to know whose orders to obey`)
  return id
}

export async function startNode (config: NodeConfig): Promise<NodeDaemon> {
  const log = config.logger
  const managerPeerId = managerPeerIdOf(config.manager)
  if (!Number.isFinite(config.capacity) || config.capacity < 0) throw new BadInputError(`invalid capacity ${config.capacity}`)
  if (Number.isNaN(config.maxEgress) || config.maxEgress < 0) throw new BadInputError(`invalid max egress ${config.maxEgress}`)

  // Everything started is deferred here and closed in reverse, also when a later step fails.
  const closers = new AsyncDisposableStack()
  const closeOnStop = (part: string, close: () => Promise<void>): void => { deferClose(closers, part, close, log) }
  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      await closers.disposeAsync()
      log.info('node stopped')
    })()
    await stopping
  }

  let resolveEnded!: (end: NodeEnd) => void
  const ended = new Promise<NodeEnd>((resolve) => { resolveEnded = resolve })
  let leaving = false
  /** Stops for good: everything closes, then (when removed) the blobs go unless kept. */
  const leave = (end: LinkEnd): void => {
    if (leaving) return
    leaving = true
    void (async () => {
      let message = end.kind === 'removed' ? `node removed from the pool by the manager (${end.message})` : `join refused: ${end.message}`
      try {
        await stop()
        if (end.kind === 'removed') message += `; ${await leaveDataDir(config.dataDir, managerPeerId, config.keepData === true)}`
      } catch (err) {
        log.error({ err: describeError(err) }, 'leaving the pool did not finish cleanly')
        message += ` (could not finish: ${describeError(err)})`
      }
      resolveEnded({ kind: end.kind, message })
    })()
  }

  try {
    await checkNotRemoved(config.dataDir)
    await mkdir(config.dataDir, { recursive: true })
    const privateKey = await loadOrCreateKey(join(config.dataDir, 'peer.key'))
    const peerId = peerIdFromPrivateKey(privateKey).toString()
    const listenHost = config.httpHost ?? NODE_DEFAULTS.httpHost
    const ports = await PortBook.open(config.dataDir)
    const managers = await PoolManagers.open({ logger: log.child({ part: 'pool' }) }, {
      configured: { peerId: managerPeerId, multiaddrs: [config.manager] },
      file: join(config.dataDir, 'pool.json')
    })
    let link: ManagerLink | undefined
    const announce = splitAnnounce(config.announce)
    const announceHost = announce.host ?? (announce.http != null ? new URL(announce.http).hostname : defaultAnnounceHost(listenHost))
    // A node announces its own addresses, so a saved port someone took meanwhile is simply replaced.
    const onFallback = (what: string) => (port: number): void => { log.warn({ port, what }, 'the port this node used last is taken; using another') }

    const store = await BlobStore.open({ dir: join(config.dataDir, 'blobs'), capacity: config.capacity, logger: log.child({ part: 'blob-store' }) })
    closeOnStop('blob-store', async () => { await store.close() })
    const index = new ContentIndex({ store, logger: log.child({ part: 'content-index' }) })
    await index.load()

    const registry = createMetricsRegistry('node')
    const metrics = createNodeMetrics(registry, store)
    const limiter = new BandwidthLimiter(config.maxEgress)
    const meter = new LoadMeter()

    const dataPlaneOn = (port: number): DataPlane => new DataPlane({
      store,
      index,
      limiter,
      meter,
      metrics,
      registry,
      health: () => ({ peerId, used: store.used, capacity: store.capacity, blobs: store.count, contents: index.size, pool: managers.pool, manager: link?.manager }),
      logger: log.child({ part: 'data-plane' })
    }, { host: listenHost, port })
    let dataPlane: DataPlane | undefined
    const bound = await bindPlanned(ports.plan('http', config.httpPort, 0), 'http', listenHost, async (port) => {
      dataPlane = dataPlaneOn(port)
      return await dataPlane.start()
    }, { fallbackToAny: true, onFallback: onFallback('http') })
    const http = announce.http ?? httpBase(announceHost, Number(new URL(bound).port))
    closeOnStop('data-plane', async () => { await dataPlane?.stop() })

    const fetcher = new BlobFetcher({ store, logger: log.child({ part: 'fetcher' }) })
    closeOnStop('fetcher', async () => { await fetcher.close() })

    const p2pPlan = ports.plan('p2p', config.p2pPort, 0)
    const host: Host = await bindPlanned(p2pPlan, 'p2p', listenHost, async port => await createHost({
      privateKey,
      listen: config.listen ?? [listenMultiaddr(listenHost, port)],
      announce: [httpMultiaddr(http)],
      reachableAt: announce.p2p,
      announceHost: config.listen != null && announce.host == null ? undefined : announceHost,
      dhtServer: true
    }), { fallbackToAny: true, onFallback: onFallback('p2p') })
    closeOnStop('libp2p', async () => { await host.stop() })

    const announcer = new ContentAnnouncer({ routing: host.contentRouting, logger: log.child({ part: 'announcer' }) })
    const executor = new OrderExecutor({ store, index, fetcher, announcer, metrics, logger: log.child({ part: 'orders' }) })
    const control = new ControlEndpoint({
      executor,
      metrics,
      managers,
      onRemoved: () => { leave({ kind: 'removed', message: 'cdn node rm' }) },
      logger: log.child({ part: 'control' })
    }, { managerPeerId })
    await control.start(host)
    closeOnStop('control', async () => { await control.stop() })

    const background = new AbortController()
    const peers = [config.manager, ...(config.bootstrap ?? [])]
    const dialed = await dialBootstrap(host, peers, AbortSignal.any([background.signal, AbortSignal.timeout(10_000)]))
    for (const f of dialed.failed) log.warn({ addr: f.addr, err: f.error }, 'could not dial bootstrap peer')

    // Announcing thousands of contents takes a while; the node serves meanwhile.
    const held = index.contents().map(c => parseContentId(c))
    const reannounce = announcer.announceAll(held, background.signal).then(
      (n) => { log.info({ announced: n, held: held.length }, 're-announced held contents') },
      (err: unknown) => { log.error({ err: describeError(err) }, 're-announcing held contents failed') }
    )
    closeOnStop('re-announce', async () => { background.abort(new UnavailableError('node stopping')); await reannounce })

    const egressCap = Number.isFinite(config.maxEgress) && config.maxEgress > 0 ? config.maxEgress : undefined
    const heldNow = heldWindow()
    const report = (): NodeReport => {
      const load = meter.read()
      return { http, capacity: store.capacity, used: store.used, egressCap, egressRate: load.egressRate, blobs: store.count, contents: busiest(load.contents), held: heldNow(index.contents()) }
    }
    link = new ManagerLink({
      call: async (request, signal, manager) => await rpcCall(host, manager.multiaddrs.map(parseMultiaddr), CONTROL_PROTOCOL, request, { signal, timeout: CONTROL_CALL_TIMEOUT_MS, maxReplyBytes: MAX_MANAGER_REPLY_BYTES }),
      managers,
      report,
      onDrop: async (contents, signal) => await executor.drop(contents, signal),
      onEnd: leave,
      logger: log.child({ part: 'manager-link' })
    }, { joinToken: config.joinToken, zone: config.zone, heartbeatMs: config.heartbeatMs })
    link.start()
    closeOnStop('manager-link', async () => { await link?.stop() })

    const gc = new GarbageCollector({ store, index, logger: log.child({ part: 'gc' }) }, { graceMs: config.gcGraceMs })
    gc.start()
    closeOnStop('gc', async () => { await gc.stop() })

    const multiaddrs = host.getMultiaddrs().map(String).filter(a => !a.includes('/http'))
    // Explicit listen or announce addresses hide the bound port; only a port we chose ourselves is kept.
    const p2pPort = config.listen != null ? undefined : announce.p2p.length > 0 ? (p2pPlan.port > 0 ? p2pPlan.port : undefined) : firstTcpPort(multiaddrs)
    await ports.record({ http: Number(new URL(bound).port), ...(p2pPort != null ? { p2p: p2pPort } : {}) })
    log.info({ peerId, http, multiaddrs, manager: managerPeerId, pool: managers.pool, managers: managers.targets().length }, 'node started')
    return { peerId, http, multiaddrs, ended, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

/** The contents with the most bytes served, at most MAX_REPORTED_LOADS of them (a heartbeat frame stays small). */
function busiest (loads: Record<string, ContentLoad>): Record<string, ContentLoad> {
  const entries = Object.entries(loads)
  if (entries.length <= MAX_REPORTED_LOADS) return loads
  entries.sort((a, b) => b[1].bytes - a[1].bytes || b[1].requests - a[1].requests)
  return Object.fromEntries(entries.slice(0, MAX_REPORTED_LOADS))
}

/**
 * Which held contents a heartbeat lists: all of them, or, for a node holding
 * more than MAX_HELD, the next window of them each time, so every content is
 * reconciled within a few heartbeats.
 */
function heldWindow (): (all: string[]) => string[] {
  let cursor = 0
  return (all) => {
    if (all.length <= MAX_HELD) return all
    cursor %= all.length
    const out = all.slice(cursor, cursor + MAX_HELD)
    if (out.length < MAX_HELD) out.push(...all.slice(0, MAX_HELD - out.length))
    cursor += MAX_HELD
    return out
  }
}
