/**
 * The manager daemon: the one place that builds the manager's parts from its
 * config, wires them together, and closes them in reverse order.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { IdentifyResult } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { serveRpc } from '../core/control-rpc.ts'
import { defaultAnnounceHost, firstTcpPort, httpBase as httpBaseOf, listenMultiaddr, splitAnnounce } from '../core/addresses.ts'
import { deferClose } from '../core/closing.ts'
import { BadInputError, describeError, UnavailableError } from '../core/errors.ts'
import { createHost, loadOrCreateKey, type Host } from '../core/host.ts'
import { bindPlanned, listenHttp, PortBook } from '../core/ports.ts'
import type { HttpLimits } from '../core/http-guard.ts'
import type { Logger } from '../core/log.ts'
import { createMetricsRegistry } from '../core/metrics.ts'
import { CONTROL_PROTOCOL, parseNodeMessage } from '../core/wire.ts'
import { ADMIN_TOKEN_FILE, ensureAdminToken } from './api/admin-token.ts'
import { createApiServer } from './api/api-server.ts'
import { createApiHandler, type ApiComponents } from './api/api.ts'
import { Capabilities } from './api/capabilities.ts'
import { NameService } from './api/name-service.ts'
import { SessionPublisher } from './publish/session-publisher.ts'
import { httpHave } from './publish/holder-check.ts'
import { CDC_DEFAULTS } from '../core/cdc-chunker.ts'
import { Chore } from '../core/chore.ts'
import { KeySealer, loadMasterKey, MASTER_KEY_FILE } from './catalog/key-sealing.ts'
import { catalogLocation, openCatalog } from './catalog/open.ts'
import { ContentDeleter } from './publish/delete.ts'
import { DemandTracker } from './replication/demand-tracker.ts'
import { ensureJoinToken, writeManagerAddress } from './nodes/join-command.ts'
import { actionMetrics, createManagerMetrics, createReplicationMetrics } from './metrics.ts'
import { NodeAdmin } from './nodes/node-admin.ts'
import { RpcNodeClient } from './nodes/node-client.ts'
import { NodeListSigner } from './nodes/node-list.ts'
import { NodeRegistry } from './nodes/node-registry.ts'
import { Publisher } from './publish/publish.ts'
import { RepairBlockedMonitor } from './replication/repair-blocked.ts'
import { createConsole } from './ui/console-routes.ts'
import { HistorySampler } from './ui/history-sampler.ts'
import { SessionStore } from './ui/session-store.ts'
import { ReportVerifier } from './replication/report-verifier.ts'
import { DEFAULT_POLICY, type PolicySettings } from './replication/replication-policy.ts'
import { MANAGER_DEFAULTS } from './defaults.ts'
import { Staging } from './publish/staging.ts'
import { SharedDemand } from './replication/shared-demand.ts'
import { openPoolIdentity, POOL_KEY_FILE } from './pool/pool-identity.ts'
import { PoolPresence } from './pool/pool-presence.ts'
import { ControllerLease } from './pool/controller-lease.ts'
import { startControllerTerm, type ControllerTerm } from './pool/controller-term.ts'
import { TokenStore, type Role } from './catalog/tokens.ts'

export interface ManagerConfig {
  dataDir: string
  /** a PostgreSQL connection string for the catalog (it may hold a password: never log it); default: SQLite in dataDir */
  databaseUrl?: string
  /** the pool master key that seals content keys in the catalog (default: master.key in dataDir, made on first start) */
  masterKeyFile?: string
  /** the pool identity's key, shared by the pool's managers (default: pool.key in dataDir, made on first start) */
  poolKeyFile?: string
  httpHost?: string            // address the HTTP API and libp2p listen on (may be 0.0.0.0 or ::), default '127.0.0.1'
  httpPort?: number            // default: the port this data directory used last, else defaultPorts.http, else any
  p2pPort?: number             // libp2p TCP port on httpHost; same defaults as httpPort
  /** the ports a fresh data directory takes (`cdn manager start`: 7070 and 7071); 0 = any free port */
  defaultPorts?: { http?: number, p2p?: number }
  listen?: string[]            // explicit libp2p listen multiaddrs, instead of httpHost and p2pPort
  /**
   * what others are told to use: `http://host:port` for the API (staging
   * URLs handed to nodes), `/…` multiaddrs for libp2p, a bare host for both.
   * Default: the listen address, or this host's first external interface
   * address when listening on a wildcard; never 0.0.0.0.
   */
  announce?: string[]
  publisherTokens?: string[]   // plain tokens to register (stored hashed) at start
  joinTokens?: string[]        // plain join tokens to register (stored hashed)
  tls?: { cert: Buffer | string, key: Buffer | string }  // PEM; the API is then HTTPS (blob routes stay plain HTTP on the same port)
  httpLimits?: HttpLimits      // default: core/http-guard.ts's, with no whole-request deadline (uploads) and 256 connections per client
  replicas?: number            // default 3
  chunkSize?: number           // default 1 MiB
  chunking?: 'fixed' | 'cdc'   // default 'fixed'; 'cdc' cuts uploads by content unless they ask for fixed chunks
  maxUploadBytes?: number      // default 64 GiB
  uploadTimeoutMs?: number     // default 6 h
  heartbeatMs?: number         // told to nodes in `joined`, default 5000; also the controller lease's lifetime
  deadNodeMs?: number          // default 3 × heartbeatMs
  reconcileMs?: number         // replication controller round, default 10 s
  moveShare?: number           // share of the pool's egress its own moves may use, default 0.2
  minCopies?: number           // no chunk ever drops below this many confirmed copies through our deletes, default 2
  maxCopies?: number           // most copies demand may raise a content to, default 8
  policy?: Partial<Omit<PolicySettings, 'moveBudget' | 'minCopies' | 'maxCopies'>>  // other policy knobs (high-water marks, utilisation bands)
  logger: Logger
}

export interface ManagerDaemon { peerId: string, http: string, multiaddrs: string[], pool: string, stop(): Promise<void> }

/** ms a node's join or heartbeat may take on the control protocol */
const CONTROL_TIMEOUT_MS = 30_000
/**
 * Any peer may knock (joins carry a token), so what it may send is small: a
 * heartbeat with its full `held` list and busiest loads fits well within this.
 */
const MAX_NODE_MESSAGE_BYTES = 1024 * 1024

/**
 * Uploads run for hours under their own deadline, so there is no deadline for
 * a whole request: the idle timeout cuts a stalled body. Every node keeps up to
 * 8 connections to staging, and on one machine (or behind one NAT) they share
 * an address, hence more connections per client than the default.
 */
const MANAGER_HTTP_LIMITS: HttpLimits = { requestTimeout: 0, maxConnectionsPerClient: 256 }

function isLoopback (host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1' || host === '[::1]'
}

export async function startManager (config: ManagerConfig): Promise<ManagerDaemon> {
  const log = config.logger
  const d = MANAGER_DEFAULTS
  const heartbeatMs = config.heartbeatMs ?? d.heartbeatMs
  const deadNodeMs = config.deadNodeMs ?? d.deadNodeHeartbeats * heartbeatMs
  const httpHost = config.httpHost ?? d.httpHost
  const reconcileMs = config.reconcileMs ?? d.reconcileMs
  const moveShare = config.moveShare ?? d.moveShare
  const minCopies = config.minCopies ?? d.minCopies
  const maxCopies = config.maxCopies ?? d.maxCopies
  if (!Number.isSafeInteger(minCopies) || minCopies < 1) throw new BadInputError(`min copies must be a positive integer, got ${minCopies}`)
  if (!Number.isSafeInteger(maxCopies) || maxCopies < minCopies) throw new BadInputError(`max copies must be an integer ≥ min copies (${minCopies}), got ${maxCopies}`)
  if (!(moveShare > 0 && moveShare <= 1)) throw new BadInputError(`move share must be in (0, 1], got ${moveShare}`)
  if (!(reconcileMs >= 10)) throw new BadInputError(`reconcile interval must be at least 10 ms, got ${reconcileMs}`)
  const policy = { ...DEFAULT_POLICY, ...config.policy, minCopies, maxCopies }
  const shutdown = new AbortController()
  /** What was opened so far, closed in reverse on stop or on a failed start. */
  const closers = new AsyncDisposableStack()
  const closeOnStop = (part: string, close: () => Promise<void> | void): void => { deferClose(closers, part, close, log) }
  const closeAll = async (): Promise<void> => {
    shutdown.abort(new UnavailableError('manager stopping'))
    await closers.disposeAsync()
  }

  try {
    await mkdir(config.dataDir, { recursive: true })
    const privateKey = await loadOrCreateKey(join(config.dataDir, 'manager.key'))
    const ports = await PortBook.open(config.dataDir)
    const announce = splitAnnounce(config.announce)
    const announceHost = announce.host ?? (announce.http != null ? new URL(announce.http).hostname : defaultAnnounceHost(httpHost))

    // ---- storage ---------------------------------------------------------
    const metricsRegistry = createMetricsRegistry('manager')
    let countNodes: () => Promise<Record<string, number>> = async () => ({})
    const metrics = createManagerMetrics(metricsRegistry, async () => await countNodes())
    const location = catalogLocation(config.dataDir, config.databaseUrl)
    const masterKeyFile = config.masterKeyFile ?? join(config.dataDir, MASTER_KEY_FILE)
    const master = await loadMasterKey(masterKeyFile, true)
    if (master.created) log.info({ path: masterKeyFile }, 'made the pool master key that seals content keys; managers of this pool share this file')
    const { catalog, tokens, keys, lifecycle, poolMeta, managers, leases, names, lineage, sessions, keysSealed, close: closeDb } = await openCatalog(location, new KeySealer(master.key), { onEvent: kind => { metrics.events.inc({ kind }) } })
    closeOnStop('database', closeDb)
    const poolKeyFile = config.poolKeyFile ?? join(config.dataDir, POOL_KEY_FILE)
    const pool = await openPoolIdentity({ file: poolKeyFile, create: config.poolKeyFile == null, managerKey: privateKey, meta: poolMeta })
    if (pool.origin !== 'file') log.info({ path: poolKeyFile, pool: pool.peerId, origin: pool.origin }, 'wrote the pool key that signs for the pool; managers of this pool share this file')
    if (keysSealed > 0) log.info({ keys: keysSealed }, 'sealed content keys stored in clear by an older manager')
    log.info({ engine: 'sqlite' in location ? 'sqlite' : 'postgres', ...('sqlite' in location ? { path: location.sqlite } : {}) }, 'catalog opened')
    await registerConfigured(tokens, 'publisher', config.publisherTokens ?? [], log)
    await registerConfigured(tokens, 'join', [...(config.joinTokens ?? []), await ensureJoinToken(config.dataDir)], log)
    const adminTokenFile = join(config.dataDir, ADMIN_TOKEN_FILE)
    await ensureAdminToken({ tokens, catalog, logger: log }, adminTokenFile)
    const staging = new Staging(join(config.dataDir, 'staging'), { memoryBytes: d.stagingMemoryBytes })
    await staging.init()

    // ---- libp2p ----------------------------------------------------------
    // The manager's address is in every node's configuration: a taken port is an error, never a silent move.
    const p2pPlan = ports.plan('p2p', config.p2pPort, config.defaultPorts?.p2p ?? 0)
    const host: Host = await bindPlanned(p2pPlan, 'p2p', httpHost, async port => await createHost({
      privateKey,
      listen: config.listen ?? [listenMultiaddr(httpHost, port)],
      reachableAt: announce.p2p,
      announceHost: config.listen != null && announce.host == null ? undefined : announceHost,
      dhtServer: true
    }), { fallbackToAny: false })
    closeOnStop('libp2p', async () => { await host.stop() })
    const peerId = host.peerId.toString()

    // Demand only counts while a node reports; a node silent past the death deadline serves nothing.
    const demand = new DemandTracker({ staleMs: deadNodeMs })
    const sharedDemand = new SharedDemand({ catalog, tracker: demand, logger: log.child({ part: 'demand' }) })
    let multiaddrs: string[] = []
    let apiBase = ''
    const presence = new PoolPresence({ managers, meta: poolMeta, leases, pool, self: () => ({ peerId, multiaddrs, http: apiBase }) }, { liveMs: deadNodeMs })
    const registry = new NodeRegistry({
      catalog,
      tokens,
      logger: log.child({ part: 'registry' }),
      onHeartbeat: async (node, hb, now) => { await sharedDemand.record(node, hb, now) },
      poolNews: async () => await presence.news(),
      onDead: (node) => { demand.forget(node) },
      addressesOf: async (id) => {
        const peer = await host.peerStore.get(peerIdFromString(id))
        return peer.addresses.map(a => a.multiaddr.toString())
      }
    }, { heartbeatMs, deadNodeMs, uncappedEgress: policy.uncappedEgress })
    countNodes = async () => await registry.countByState()
    const onIdentify = (evt: CustomEvent<IdentifyResult>): void => {
      registry.updateAddresses(evt.detail.peerId.toString(), evt.detail.listenAddrs.map(a => a.toString())).catch((err: unknown) => {
        log.warn({ err: describeError(err) }, 'could not record node addresses')
      })
    }
    host.addEventListener('peer:identify', onIdentify)
    closeOnStop('identify listener', () => { host.removeEventListener('peer:identify', onIdentify) })

    await serveRpc(host, CONTROL_PROTOCOL, async (request, remotePeer) => {
      return await registry.handle(parseNodeMessage(request), remotePeer.toString())
    }, {
      allow: () => true,
      maxRequestBytes: MAX_NODE_MESSAGE_BYTES,
      timeout: CONTROL_TIMEOUT_MS,
      onError: (err, remotePeer) => { log.warn({ node: remotePeer.toString(), err: describeError(err) }, 'control request refused') }
    })
    closeOnStop('control protocol', async () => { await host.unhandle(CONTROL_PROTOCOL) })

    // ---- services --------------------------------------------------------
    // A node that dialled another manager (or none since a restart) is reached at the addresses the catalog holds.
    const nodes = new RpcNodeClient({ libp2p: host, knownAddresses: async id => (await catalog.getNode(id))?.addrs ?? [], onOrder: (kind, outcome) => { metrics.orders.inc({ kind, outcome }) } })
    let httpBase = ''
    // Publishes under a name check their holders' have-bitmaps once the manifest is stored (publish/holder-check.ts).
    const holderHave = httpHave(async node => (await catalog.getNode(node))?.http, log.child({ part: 'holder-check' }))
    closeOnStop('holder checks', holderHave.close)
    // What both ways of publishing (streamed, and by upload session) stand on.
    const publishing = {
      have: holderHave.have,
      catalog,
      lifecycle,
      staging,
      nodes,
      candidates: async () => await registry.candidates(),
      signer: pool,
      manager: peerId,
      stagingUrl: (cid: string) => `${httpBase}/staging/${cid}`,
      shutdown: shutdown.signal,
      onPublished: (bytes: number) => { metrics.bytesPublished.inc(bytes) },
      onReceived: (bytes: number) => { metrics.bytesReceived.inc(bytes) }
    }
    const publisher = new Publisher({ ...publishing, lineage, logger: log.child({ part: 'publish' }) }, {
      replicas: config.replicas,
      chunkSize: config.chunkSize,
      chunking: config.chunking,
      maxUploadBytes: config.maxUploadBytes,
      uploadTimeoutMs: config.uploadTimeoutMs
    })
    // Stops after the HTTP server (which feeds it) closed, before libp2p goes.
    closeOnStop('publisher', async () => { await publisher.close() })
    // A plan may announce chunks as large as content-defined chunking makes, or as the fixed size, whichever is larger.
    const maxChunkBytes = Math.max(CDC_DEFAULTS.max, config.chunkSize ?? MANAGER_DEFAULTS.chunkSize)
    const sessionPublisher = new SessionPublisher({
      ...publishing,
      lineage,
      sessions,
      abandon: async (uploads, why) => await publisher.abandon(uploads, why),
      logger: log.child({ part: 'sessions' })
    }, { replicas: config.replicas, maxChunkBytes, maxUploadBytes: config.maxUploadBytes })
    closeOnStop('upload sessions', async () => { await sessionPublisher.close() })
    const deleter = new ContentDeleter({ catalog, lifecycle, nodes, logger: log.child({ part: 'delete' }) })
    closeOnStop('deletes', async () => { await deleter.close() })
    const reports = new ReportVerifier({ catalog, logger: log.child({ part: 'reports' }) })
    closeOnStop('reports', async () => { await reports.close() })
    const nodeList = new NodeListSigner({ catalog, signer: pool, nextSeq: async () => await poolMeta.nextSeq() })
    const nodeAdmin = new NodeAdmin({ catalog, nodes, logger: log.child({ part: 'nodes' }), onRemoved: (node) => { demand.forget(node) } }, {
      minCopies,
      diskHighWater: policy.diskHighWater,
      egressHighWater: policy.egressHighWater,
      heartbeatMs
    })
    closeOnStop('node admin', async () => { await nodeAdmin.close() })
    const replicationMetrics = createReplicationMetrics(metricsRegistry)
    // Reads each round's snapshot beside the policy: repair the pool cannot do is reported, not just deferred.
    const repairBlocked = new RepairBlockedMonitor({ events: catalog, registry: metricsRegistry, logger: log.child({ part: 'repair-blocked' }) })
    const history = new HistorySampler()
    let term: ControllerTerm | undefined
    const lease = new ControllerLease({
      leases,
      holder: peerId,
      logger: log.child({ part: 'lease' }),
      onTerm: (t) => {
        term = startControllerTerm({
          catalog,
          leases,
          self: peerId,
          nodes,
          registry,
          tracker: demand,
          demand: sharedDemand,
          deleter,
          publisher,
          sessions: sessionPublisher,
          manifestUrl: id => `${httpBase}/manifest/${id}`,
          observe: async (snapshot, now) => {
            try {
              await repairBlocked.observe({ nodes: snapshot.nodes, contents: snapshot.contents, minCopies, diskHighWater: policy.diskHighWater, now })
            } catch (err) {
              log.error({ err: describeError(err) }, 'could not tell whether repair is blocked')
            }
          },
          onRound: (at, snapshot, report, budget) => { history.record(at, snapshot, report, budget) },
          metrics: { replication: replicationMetrics, actions: actionMetrics(replicationMetrics) },
          logger: log
        }, { intervalMs: reconcileMs, moveShare, policy, minCopies, sweepMs: Math.max(50, Math.min(heartbeatMs, deadNodeMs / 3)), managerDeadMs: deadNodeMs }, t)
      }
    }, { ttlMs: Math.max(100, heartbeatMs) })

    // ---- HTTP ------------------------------------------------------------
    const httpLimits = { ...MANAGER_HTTP_LIMITS, ...config.httpLimits }
    const apiComponents: ApiComponents = {
      uploadIdleMs: httpLimits.idleTimeout,
      catalog,
      keys,
      tokens,
      capabilities: new Capabilities({ signer: pool }),
      staging,
      publisher,
      deleter,
      metricsRegistry,
      metrics,
      info: () => ({ peerId, multiaddrs, http: apiBase, pool: pool.peerId, managers: presence.urls() }),
      nodeAdmin,
      replication: () => ({
        minCopies,
        pendingActions: term?.runner.pending ?? 0,
        lastRound: term?.controller.last ?? null,
        repairBlocked: repairBlocked.current,
        controller: { self: lease.epoch != null, ...(lease.epoch != null ? { epoch: lease.epoch } : {}), holder: presence.controller() ?? null }
      }),
      reports,
      nodeList: async () => await nodeList.current(),
      names: { store: names, service: new NameService({ names, lineage, deleter, signer: pool, logger: log.child({ part: 'names' }) }) },
      sessions: { publisher: sessionPublisher, maxChunkBytes },
      logger: log.child({ part: 'api' })
    }
    const consoleUi = createConsole({
      catalog,
      nodeHealth: (n, h) => nodeAdmin.health(n, h),
      replication: apiComponents.replication,
      history,
      tokens,
      sessions: new SessionStore(),
      logger: log.child({ part: 'console' })
    })
    apiComponents.ui = consoleUi.handle
    const server = createApiServer({
      handler: createApiHandler(apiComponents),
      plainHandler: createApiHandler(apiComponents, { blobsOnly: true }),
      tls: config.tls,
      limits: httpLimits
    })
    const httpPlan = ports.plan('http', config.httpPort, config.defaultPorts?.http ?? 0)
    const address = await bindPlanned(httpPlan, 'http', httpHost, async port => await server.listen(port, httpHost), { fallbackToAny: false })
    // Nodes fetch staged blobs and manifests over plain HTTP (the same port answers both with TLS).
    httpBase = announce.http ?? httpBaseOf(announceHost, address.port)
    apiBase = server.scheme === 'https' ? httpBase.replace(/^http:/, 'https:') : httpBase
    closeOnStop('http', async () => {
      consoleUi.close()
      await server.close()
    })
    multiaddrs = host.getMultiaddrs().map(a => a.toString())
    // Explicit listen or announce addresses hide the bound port; only a port we chose ourselves is kept.
    const p2pPort = config.listen != null ? undefined : announce.p2p.length > 0 ? (p2pPlan.port > 0 ? p2pPlan.port : undefined) : firstTcpPort(multiaddrs)
    await ports.record({ http: address.port, ...(p2pPort != null ? { p2p: p2pPort } : {}) })
    await writeManagerAddress(config.dataDir, { peerId, multiaddrs, http: httpBase, reachableFromOtherHosts: !isLoopback(httpHost) })

    // ---- the pool's managers ----------------------------------------------
    // Seen by the others (and listed to nodes) before this manager may run the controller.
    await presence.refresh()
    const presenceChore = new Chore('presence', lease.tickMs, async () => { await presence.refresh() }, log)
    presenceChore.start()
    closeOnStop('presence', async () => {
      await presenceChore.close()
      await presence.leave()
    })
    lease.start()
    // The term's orders under way are cut; their copies stay pending in the catalog and the
    // next term treats them as suspect (present or not, nobody knows).
    closeOnStop('controller lease', async () => {
      await lease.stop()
      await term?.closed
    })
    // In the background: nodes may take a moment to be reachable, and the API need not wait.
    void publisher.cleanupAbandoned().then(
      n => { if (n > 0) log.info({ uploads: n }, 'cleaned up uploads interrupted by a restart') },
      err => { log.error({ err: describeError(err) }, 'cleaning up interrupted uploads failed') }
    )

    log.info({ peerId, pool: pool.peerId, http: apiBase, multiaddrs, heartbeatMs, deadNodeMs, reconcileMs, moveShare, minCopies, maxCopies }, 'manager started')

    let stopping: Promise<void> | undefined
    return {
      peerId,
      http: apiBase,
      multiaddrs,
      pool: pool.peerId,
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

/** Registers the operator's tokens; one revoked earlier stays revoked, and says so. */
async function registerConfigured (tokens: TokenStore, role: Role, list: string[], log: Logger): Promise<void> {
  for (const t of list) {
    const info = await tokens.register(role, t)

    if (info.revokedAt != null) log.warn({ token: info.id, role }, 'a configured token was revoked earlier and stays revoked; remove it from the configuration')
    else if (info.role !== role) log.warn({ token: info.id, role: info.role, configured: role }, 'a configured token is already registered with another role; it keeps that role')
  }
}
