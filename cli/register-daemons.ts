/** `cdn manager start|join-command`, `cdn node start`, `cdn proxy start`: the daemons, their help showing each daemon's defaults. */
import type { Command } from 'commander'
import { readFile } from 'node:fs/promises'
import { BadInputError } from '../core/errors.ts'
import { createLogger } from '../core/log.ts'
import { loadCa } from '../core/tls-client.ts'
import { durationText, parseDuration, parseRate, parseSize, sizeText } from '../core/units.ts'
import { MANAGER_DEFAULTS } from '../manager/defaults.ts'
import { parseChunkingMode } from '../core/chunker.ts'
import { NODE_DEFAULTS } from '../node/defaults.ts'
import { PROXY_DEFAULTS } from '../proxy/defaults.ts'
import { addAddressOptions, addressConfig, namingPortFlags } from './address-options.ts'
import { caOption, collect, intArg, managerOption, managerUrls, print, shareArg } from './cli-options.ts'
import { withConfigFile } from './config-options.ts'
import { runDaemon } from './daemon-runner.ts'
import { joinInstructions, showJoinCommand } from './join-commands.ts'
import { configuredTokens, readOneToken } from './secrets.ts'
import { DATABASE_URL_ENV, databaseUrl } from './database-url.ts'
import { addMigrateCommand } from './migrate-command.ts'

/** Where each daemon keeps its data unless told otherwise (the daemons themselves require a directory). */
export const DATA_DIRS = { manager: '.cdn/manager', node: '.cdn/node', proxyCache: '.cdn/proxy/cache', proxyState: '.cdn/proxy' } as const

async function readPem (path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err: any) {
    throw new BadInputError(`cannot read the TLS ${what} ${path}: ${err?.code === 'ENOENT' ? 'no such file' : String(err?.message ?? err)}`, { cause: err })
  }
}

async function managerTls (o: { tlsCert?: string, tlsKey?: string }): Promise<{ cert: Buffer, key: Buffer } | undefined> {
  if (o.tlsCert == null && o.tlsKey == null) return undefined
  if (o.tlsCert == null || o.tlsKey == null) throw new BadInputError('HTTPS needs both --tls-cert and --tls-key')
  return { cert: await readPem(o.tlsCert, 'certificate'), key: await readPem(o.tlsKey, 'key') }
}

/** The node's join token: `--join-token-file F`, else `CDN_JOIN_TOKEN`. */
async function joinToken (file: string | undefined): Promise<string> {
  if (file != null) return await readOneToken(file)
  const t = process.env.CDN_JOIN_TOKEN?.trim()
  if (t == null || t === '') throw new BadInputError('a join token is needed: --join-token-file FILE or CDN_JOIN_TOKEN')
  return t
}

export function addManagerCommands (manager: Command): void {
  const d = MANAGER_DEFAULTS
  const managerStart = manager.command('start')
    .description('run a manager until SIGINT/SIGTERM; prints the command that joins a node to it')
    .option('--dir <dir>', 'data directory (catalog, identity, ports, join token, staging)', DATA_DIRS.manager)
    .option('--database-url-file <file>', `keep the catalog in PostgreSQL: file holding its postgres:// connection string (default: $${DATABASE_URL_ENV}; neither: SQLite, catalog.db in --dir)`)
    .option('--master-key-file <file>', 'the pool master key that seals content keys in the catalog; managers of one pool share it (default: master.key in --dir, made on first start)')
    .option('--pool-key-file <file>', "the pool identity's key, which signs manifests, capabilities and lists for the whole pool; managers of one pool share it (default: pool.key in --dir, made on first start)")
  addAddressOptions(managerStart, { http: String(d.httpPort), p2p: String(d.p2pPort) })
  withConfigFile(managerStart)
  managerStart
    .option('--publisher-token-file <file>', 'register the publisher tokens in this file, one per line (repeatable; also $CDN_PUBLISHER_TOKENS, comma-separated; stored hashed)', collect)
    .option('--join-token-file <file>', 'register the node join tokens in this file, one per line (repeatable; also $CDN_JOIN_TOKENS, comma-separated; stored hashed)', collect)
    .option('--tls-cert <file>', 'serve the API over HTTPS with this PEM certificate (chain); needs --tls-key')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--replicas <n>', 'default copies per chunk', intArg('--replicas', 1), d.replicas)
    .option('--chunk-size <size>', 'size of fixed chunks', sizeText(d.chunkSize))
    .option('--chunking <mode>', 'how uploads are cut unless they say: fixed (--chunk-size) or cdc (by content, 512 KiB to 2 MiB, so an edited file shares most chunks)', d.chunking)
    .option('--max-upload <size>', 'largest accepted upload', sizeText(d.maxUploadBytes))
    .option('--heartbeat <duration>', 'heartbeat interval told to nodes', durationText(d.heartbeatMs))
    .option('--dead-after <duration>', 'silence after which a node is dead (default 3 heartbeats)')
    .option('--reconcile <duration>', 'interval of the replication controller (mirror, trim, migrate, repair, drain, expiry)', durationText(d.reconcileMs))
    .option('--move-share <share>', "share of the pool's egress its own moves may use", shareArg, d.moveShare)
    .option('--min-copies <n>', 'no chunk ever drops below this many confirmed copies through the pool\'s own deletes', intArg('--min-copies', 1), d.minCopies)
    .option('--max-copies <n>', 'most copies demand may raise a content to', intArg('--max-copies', 1), d.maxCopies)
    .option('--json', 'print the ready line as JSON')
    .action(async (o) => {
      const { startManager } = await import('../manager/daemon.ts')
      const logger = createLogger('manager')
      await runDaemon('manager', async () => await namingPortFlags(async () => await startManager({
        dataDir: o.dir,
        databaseUrl: await databaseUrl(o.databaseUrlFile),
        masterKeyFile: o.masterKeyFile,
        poolKeyFile: o.poolKeyFile,
        ...addressConfig(o),
        defaultPorts: { http: d.httpPort, p2p: d.p2pPort },
        publisherTokens: await configuredTokens(o.publisherTokenFile, 'CDN_PUBLISHER_TOKENS'),
        joinTokens: await configuredTokens(o.joinTokenFile, 'CDN_JOIN_TOKENS'),
        tls: await managerTls(o),
        replicas: o.replicas,
        chunkSize: parseSize(o.chunkSize),
        chunking: parseChunkingMode(o.chunking, '--chunking'),
        maxUploadBytes: parseSize(o.maxUpload),
        heartbeatMs: parseDuration(o.heartbeat),
        deadNodeMs: o.deadAfter != null ? parseDuration(o.deadAfter) : undefined,
        reconcileMs: parseDuration(o.reconcile),
        moveShare: o.moveShare,
        minCopies: o.minCopies,
        maxCopies: o.maxCopies,
        logger
      }), { http: '--http-port', p2p: '--p2p-port' }), m => ({ peerId: m.peerId, http: m.http, multiaddrs: m.multiaddrs, pool: m.pool }), o.json === true, logger, async () => await joinInstructions(o.dir))
    })

  addMigrateCommand(manager)

  manager.command('join-command')
    .description('print the command that joins a new node to the manager of this data directory (the token stays in its file)')
    .option('--dir <dir>', "the manager's data directory", DATA_DIRS.manager)
    .option('--json', 'print { command, manager, tokenFile, env }')
    .action(async (o) => {
      const r = await showJoinCommand(o.dir)
      print(o.json === true, r, r.command)
    })
}

export function addNodeStart (node: Command): void {
  const nodeStart = node.command('start')
    .description('join an idle server to the pool and serve until SIGINT/SIGTERM')
    .option('--manager <multiaddr>', "manager's libp2p address with /p2p/<peerId> (its orders are the only ones obeyed); required, here or in --config")
    .option('--join-token-file <file>', 'file holding the join token issued by the manager operator (default: $CDN_JOIN_TOKEN)')
    .option('--data <dir>', 'data directory (blobs, identity, ports)', DATA_DIRS.node)
    .option('--capacity <size>', 'disk space to offer', sizeText(NODE_DEFAULTS.capacity))
    .option('--max-egress <rate>', 'egress cap, e.g. 50MB/s or unlimited', sizeText(NODE_DEFAULTS.maxEgress))
    .option('--zone <zone>', 'failure zone (copies of a chunk go to distinct zones)')
  addAddressOptions(nodeStart, { http: 'the last one, else any', p2p: 'the last one, else any' })
  withConfigFile(nodeStart)
  nodeStart
    .option('--bootstrap <multiaddr>', 'extra DHT peer (repeatable)', collect)
    .option('--keep-data', 'when removed from the pool, keep the blobs on disk instead of deleting them')
    .option('--json', 'print the ready line as JSON')
    .action(async (o) => {
      const { startNode } = await import('../node/daemon.ts')
      const { exitWhenEnded } = await import('./node-exit.ts')
      const logger = createLogger('node')
      if (o.manager == null) throw new BadInputError('no manager: give --manager /ip4/…/tcp/…/p2p/<peerId> (cdn manager join-command prints it), or "manager" in the config file')
      const token = await joinToken(o.joinTokenFile)
      await runDaemon('node', async () => exitWhenEnded(await namingPortFlags(async () => await startNode({
        dataDir: o.data,
        manager: o.manager,
        joinToken: token,
        capacity: parseSize(o.capacity),
        maxEgress: parseRate(o.maxEgress),
        zone: o.zone,
        ...addressConfig(o),
        bootstrap: o.bootstrap,
        keepData: o.keepData === true,
        logger
      }), { http: '--http-port', p2p: '--p2p-port' })), n => ({ peerId: n.peerId, http: n.http, multiaddrs: n.multiaddrs }), o.json === true, logger)
    })
}

export function addProxyStart (proxy: Command): void {
  const d = PROXY_DEFAULTS
  const proxyStart = proxy.command('start')
    .description(`serve http://${d.httpHost}:${d.httpPort}/c/<id> until SIGINT/SIGTERM`)
    .addOption(managerOption())
    .option('--port <port>', 'HTTP port', intArg('--port'), d.httpPort)
    .option('--listen <host>', 'address to listen on (loopback unless told otherwise)', d.httpHost)
    .option('--announce <url>', 'http://host:port browsers are told to use (the PAC file; default: the listen address, or the first external interface address on a wildcard)')
    .option('--cache-dir <dir>', 'disk cache of verified (still encrypted) chunks', DATA_DIRS.proxyCache)
    .option('--cache-size <size>', 'most disk the cache may use', sizeText(d.cacheBytes))
    .option('--state-dir <dir>', 'where the proxy remembers its manager and nodes (to work while the manager is down)', DATA_DIRS.proxyState)
    .option('--suffix <suffix>', 'host suffix served when the proxy is used as a browser HTTP proxy', d.suffix)
    .addOption(caOption())
    .option('--json', 'print the ready line as JSON')
  withConfigFile(proxyStart)
  proxyStart
    .action(async (o) => {
      const { startProxy } = await import('../proxy/daemon.ts')
      const logger = createLogger('proxy')
      await runDaemon('proxy', async () => await namingPortFlags(async () => await startProxy({
        managerUrl: managerUrls(o),
        ca: await loadCa(o.ca),
        httpHost: o.listen,
        httpPort: o.port,
        announce: o.announce,
        cacheDir: o.cacheDir,
        cacheBytes: parseSize(o.cacheSize),
        stateDir: o.stateDir,
        suffix: o.suffix,
        logger
      }), { http: '--port' }),
      p => ({ http: p.http }), o.json === true, logger)
    })
}
