/**
 * The manager daemon: the one place that builds the manager's parts from its
 * config, wires them together, and closes them in reverse order.
 */
import { mkdir } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { IdentifyResult } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { serveRpc } from '../core/control-rpc.ts'
import { BadInputError, describeError } from '../core/errors.ts'
import { createHost, loadOrCreateKey, type Host } from '../core/host.ts'
import type { Logger } from '../core/log.ts'
import { createMetricsRegistry } from '../core/metrics.ts'
import { CONTROL_PROTOCOL, parseNodeMessage } from '../core/wire.ts'
import { ActionRunner } from './action-runner.ts'
import { createApiHandler } from './api.ts'
import { Catalog } from './catalog.ts'
import { Chore } from './chore.ts'
import { Db } from './db.ts'
import { ContentDeleter } from './delete.ts'
import { DemandTracker } from './demand-tracker.ts'
import { KeyCustody } from './key-custody.ts'
import { createManagerMetrics, createReplicationMetrics } from './metrics.ts'
import { NodeAdmin } from './node-admin.ts'
import { RpcNodeClient } from './node-client.ts'
import { NodeListSigner } from './node-list.ts'
import { NodeRegistry } from './node-registry.ts'
import { PoolSnapshotter } from './pool-snapshot.ts'
import { Publisher } from './publish.ts'
import { ReplicationController } from './replication-controller.ts'
import { ReportVerifier } from './report-verifier.ts'
import { DEFAULT_POLICY, type PolicySettings } from './replication-policy.ts'
import { Staging } from './staging.ts'
import { TokenStore } from './tokens.ts'

export interface ManagerConfig {
  dataDir: string
  httpHost?: string            // default '127.0.0.1'
  httpPort?: number            // default 0
  listen?: string[]            // libp2p, default ['/ip4/127.0.0.1/tcp/0']
  publisherTokens?: string[]   // plain tokens to register (stored hashed) at start
  joinTokens?: string[]        // plain join tokens to register (stored hashed)
  replicas?: number            // default 3
  chunkSize?: number           // default 1 MiB
  maxUploadBytes?: number      // default 64 GiB
  uploadTimeoutMs?: number     // default 6 h
  heartbeatMs?: number         // told to nodes in `joined`, default 5000
  deadNodeMs?: number          // default 3 × heartbeatMs
  reconcileMs?: number         // replication controller round, default 10 s
  moveShare?: number           // share of the pool's egress its own moves may use, default 0.2
  minCopies?: number           // no chunk ever drops below this many confirmed copies through our deletes, default 2
  maxCopies?: number           // most copies demand may raise a content to, default 8
  policy?: Partial<Omit<PolicySettings, 'moveBudget' | 'minCopies' | 'maxCopies'>>  // other policy knobs (high-water marks, utilisation bands)
  logger: Logger
}

export interface ManagerDaemon { peerId: string, http: string, multiaddrs: string[], stop(): Promise<void> }

/** ms a node's join or heartbeat may take on the control protocol */
const CONTROL_TIMEOUT_MS = 30_000
/**
 * Any peer may knock (joins carry a token), so what it may send is small: a
 * heartbeat with its full `held` list and busiest loads fits well within this.
 */
const MAX_NODE_MESSAGE_BYTES = 1024 * 1024

function urlHost (host: string): string {
  // A wildcard bind is reachable on loopback; that is the address nodes on this machine fetch staging from.
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1'
  return host.includes(':') ? `[${host}]` : host
}

async function listen (server: Server, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return server.address() as AddressInfo
}

async function closeServer (server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  // Idle keep-alive sockets would hold close() open; uploads were already aborted.
  server.closeAllConnections()
  await closed
}

export async function startManager (config: ManagerConfig): Promise<ManagerDaemon> {
  const log = config.logger
  const heartbeatMs = config.heartbeatMs ?? 5000
  const deadNodeMs = config.deadNodeMs ?? 3 * heartbeatMs
  const httpHost = config.httpHost ?? '127.0.0.1'
  const reconcileMs = config.reconcileMs ?? 10_000
  const moveShare = config.moveShare ?? 0.2
  const minCopies = config.minCopies ?? DEFAULT_POLICY.minCopies
  const maxCopies = config.maxCopies ?? DEFAULT_POLICY.maxCopies
  if (!Number.isSafeInteger(minCopies) || minCopies < 1) throw new BadInputError(`min copies must be a positive integer, got ${minCopies}`)
  if (!Number.isSafeInteger(maxCopies) || maxCopies < minCopies) throw new BadInputError(`max copies must be an integer ≥ min copies (${minCopies}), got ${maxCopies}`)
  if (!(moveShare > 0 && moveShare <= 1)) throw new BadInputError(`move share must be in (0, 1], got ${moveShare}`)
  if (!(reconcileMs >= 10)) throw new BadInputError(`reconcile interval must be at least 10 ms, got ${reconcileMs}`)
  const policy = { ...DEFAULT_POLICY, ...config.policy, minCopies, maxCopies }
  const shutdown = new AbortController()
  /** Closers of what was opened so far, run in reverse on stop or on a failed start. */
  const closers: Array<{ name: string, close: () => Promise<void> | void }> = []

  const closeAll = async (): Promise<void> => {
    shutdown.abort(new Error('manager stopping'))
    for (const c of closers.reverse().splice(0)) {
      try {
        await c.close()
      } catch (err) {
        log.error({ part: c.name, err: describeError(err) }, 'closing a part of the manager failed')
      }
    }
  }

  try {
    await mkdir(config.dataDir, { recursive: true })
    const privateKey = await loadOrCreateKey(join(config.dataDir, 'manager.key'))

    // ---- storage ---------------------------------------------------------
    const db = new Db(join(config.dataDir, 'catalog.db'))
    closers.push({ name: 'database', close: () => { db.close() } })
    const metricsRegistry = createMetricsRegistry('manager')
    let countNodes: () => Record<string, number> = () => ({})
    const metrics = createManagerMetrics(metricsRegistry, () => countNodes())
    const catalog = new Catalog(db, { onEvent: kind => { metrics.events.inc({ kind }) } })
    const tokens = new TokenStore(db)
    const keys = new KeyCustody(db)
    for (const t of config.publisherTokens ?? []) tokens.register('publisher', t)
    for (const t of config.joinTokens ?? []) tokens.register('join', t)
    const staging = new Staging(join(config.dataDir, 'staging'))
    await staging.init()

    // ---- libp2p ----------------------------------------------------------
    const host: Host = await createHost({ privateKey, listen: config.listen ?? ['/ip4/127.0.0.1/tcp/0'], dhtServer: true })
    closers.push({ name: 'libp2p', close: async () => { await host.stop() } })
    const peerId = host.peerId.toString()
    // Nodes dial in; after a restart, their last known addresses let orders reach them before they do.
    for (const n of catalog.listNodes()) {
      if (n.addrs.length === 0) continue
      try {
        await host.peerStore.merge(peerIdFromString(n.peerId), { multiaddrs: n.addrs.map(a => multiaddr(a)) })
      } catch (err) {
        log.warn({ node: n.peerId, err: describeError(err) }, 'could not restore a node address')
      }
    }

    // Demand only counts while a node reports; a node silent past the death deadline serves nothing.
    const demand = new DemandTracker({ staleMs: deadNodeMs })
    const registry = new NodeRegistry({
      catalog,
      tokens,
      logger: log.child({ part: 'registry' }),
      onHeartbeat: (node, hb, now) => { demand.record(node, hb, now) },
      onDead: (node) => { demand.forget(node) },
      addressesOf: async (id) => {
        const peer = await host.peerStore.get(peerIdFromString(id))
        return peer.addresses.map(a => a.multiaddr.toString())
      }
    }, { heartbeatMs, deadNodeMs, uncappedEgress: policy.uncappedEgress })
    countNodes = () => registry.countByState()
    const onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
      try {
        registry.updateAddresses(evt.detail.peerId.toString(), evt.detail.listenAddrs.map(a => a.toString()))
      } catch (err) {
        log.warn({ err: describeError(err) }, 'could not record node addresses')
      }
    }
    host.addEventListener('peer:identify', onIdentify)
    closers.push({ name: 'identify listener', close: () => { host.removeEventListener('peer:identify', onIdentify) } })

    await serveRpc(host, CONTROL_PROTOCOL, async (request, remotePeer) => {
      return await registry.handle(parseNodeMessage(request), remotePeer.toString())
    }, {
      allow: () => true,
      maxRequestBytes: MAX_NODE_MESSAGE_BYTES,
      timeout: CONTROL_TIMEOUT_MS,
      onError: (err, remotePeer) => { log.warn({ node: remotePeer.toString(), err: describeError(err) }, 'control request refused') }
    })
    closers.push({ name: 'control protocol', close: async () => { await host.unhandle(CONTROL_PROTOCOL) } })

    // ---- services --------------------------------------------------------
    const nodes = new RpcNodeClient({ libp2p: host, onOrder: (kind, outcome) => { metrics.orders.inc({ kind, outcome }) } })
    let httpBase = ''
    const publisher = new Publisher({
      catalog,
      keys,
      staging,
      nodes,
      candidates: () => registry.candidates(),
      signer: { privateKey, peerId },
      stagingUrl: cid => `${httpBase}/staging/${cid}`,
      logger: log.child({ part: 'publish' }),
      shutdown: shutdown.signal,
      onPublished: bytes => { metrics.bytesPublished.inc(bytes) }
    }, {
      replicas: config.replicas,
      chunkSize: config.chunkSize,
      maxUploadBytes: config.maxUploadBytes,
      uploadTimeoutMs: config.uploadTimeoutMs
    })
    // Stops after the HTTP server (which feeds it) closed, before libp2p goes.
    closers.push({ name: 'publisher', close: async () => { await publisher.close() } })
    const deleter = new ContentDeleter({ catalog, keys, nodes, logger: log.child({ part: 'delete' }) })
    closers.push({ name: 'deletes', close: async () => { await deleter.close() } })
    const reports = new ReportVerifier({ catalog, logger: log.child({ part: 'reports' }) })
    closers.push({ name: 'reports', close: async () => { await reports.close() } })
    const nodeList = new NodeListSigner({ catalog, signer: { privateKey, peerId } })
    const nodeAdmin = new NodeAdmin({ catalog, nodes, logger: log.child({ part: 'nodes' }), onRemoved: (node) => { demand.forget(node) } }, {
      minCopies,
      diskHighWater: policy.diskHighWater,
      egressHighWater: policy.egressHighWater,
      heartbeatMs
    })
    closers.push({ name: 'node admin', close: async () => { await nodeAdmin.close() } })
    const replicationMetrics = createReplicationMetrics(metricsRegistry)
    const runner = new ActionRunner({
      catalog,
      nodes,
      manifestUrl: id => `${httpBase}/manifest/${id}`,
      logger: log.child({ part: 'moves' }),
      metrics: {
        onAction: (kind, reason, outcome) => {
          replicationMetrics.actions.inc({ kind, reason, outcome })
          if (outcome === 'refused') replicationMetrics.deletesRefused.inc({ reason })
        },
        onBytesMoved: (reason, bytes) => { replicationMetrics.bytesMoved.inc({ reason }, bytes) }
      }
    }, { minCopies })
    const snapshots = new PoolSnapshotter({ catalog, demand, moves: runner })
    const controller = new ReplicationController({
      snapshot: (now, uncapped) => snapshots.take(now, uncapped),
      runner,
      expire: async (id, signal) => { await deleter.delete(id, 'expiry', { signal, event: 'content-expired' }) },
      recover: () => catalog.suspectPendingCopiesOfVisible(),
      metrics: replicationMetrics,
      logger: log.child({ part: 'replication' })
    }, { intervalMs: reconcileMs, moveShare, policy })

    // ---- HTTP ------------------------------------------------------------
    let multiaddrs: string[] = []
    const server = createServer({
      // Uploads run for hours under their own deadline; Node's 5-minute request timeout would cut them.
      requestTimeout: 0,
      headersTimeout: 60_000
    }, createApiHandler({
      catalog,
      keys,
      tokens,
      staging,
      publisher,
      deleter,
      metricsRegistry,
      metrics,
      info: () => ({ peerId, multiaddrs, http: httpBase }),
      nodeAdmin,
      replication: () => ({ minCopies, pendingActions: runner.pending, lastRound: controller.last ?? null }),
      reports,
      nodeList: async () => await nodeList.current(),
      logger: log.child({ part: 'api' })
    }))
    const address = await listen(server, httpHost, config.httpPort ?? 0)
    httpBase = `http://${urlHost(httpHost)}:${address.port}`
    closers.push({ name: 'http', close: async () => { await closeServer(server) } })
    multiaddrs = host.getMultiaddrs().map(a => a.toString())

    // ---- chores ----------------------------------------------------------
    const liveness = new Chore('liveness', Math.max(50, Math.min(heartbeatMs, deadNodeMs / 3)), () => { registry.sweep() }, log)
    liveness.start()
    closers.push({ name: 'liveness', close: async () => { await liveness.close() } })
    // Closed before libp2p and the database. Orders under way are cut; their copies stay pending
    // in the catalog and the next start treats them as suspect (present or not, nobody knows).
    closers.push({ name: 'replication orders', close: async () => { await runner.close() } })
    controller.start()
    closers.push({ name: 'replication', close: async () => { await controller.close() } })
    // In the background: nodes may take a moment to be reachable, and the API need not wait.
    void publisher.cleanupAbandoned().then(
      n => { if (n > 0) log.info({ uploads: n }, 'cleaned up uploads interrupted by a restart') },
      err => { log.error({ err: describeError(err) }, 'cleaning up interrupted uploads failed') }
    )
    void deleter.resumePending().then(
      n => { if (n > 0) log.info({ orders: n }, 'finished deletes interrupted by a restart') },
      err => { log.error({ err: describeError(err) }, 'resuming interrupted deletes failed') }
    )

    log.info({ peerId, http: httpBase, multiaddrs, heartbeatMs, deadNodeMs, reconcileMs, moveShare, minCopies, maxCopies }, 'manager started')

    let stopping: Promise<void> | undefined
    return {
      peerId,
      http: httpBase,
      multiaddrs,
      stop: async () => {
        stopping ??= closeAll().then(() => { log.info('manager stopped') })
        return stopping
      }
    }
  } catch (err) {
    await closeAll()
    throw err
  }
}
