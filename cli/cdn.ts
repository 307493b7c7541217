#!/usr/bin/env node
/**
 * The `cdn` command: daemons (manager, node, proxy), publishing and fetching,
 * pool inspection, and `cdn up` for a whole local network.
 */
import { Command, InvalidArgumentError, Option } from 'commander'
import { join } from 'node:path'
import { createLogger } from '../core/log.ts'
import { CdnError, describeError } from '../core/errors.ts'
import { parseDuration, parseRate, parseSize } from '../core/units.ts'
import { runDaemon } from './daemon-runner.ts'
import { publish } from './publish.ts'
import { get } from './get.ts'
import { formatContents, formatEvents, formatStatus, listContents, listEvents, poolStatus, removeContent } from './pool-commands.ts'
import { startLocalNetwork, stopChildren } from './local-network.ts'
import { drainNode, removeNode } from './node-commands.ts'

const DEFAULT_MANAGER = process.env.CDN_MANAGER ?? 'http://127.0.0.1:7070'
const DEFAULT_PROXY = process.env.CDN_PROXY ?? 'http://127.0.0.1:8080'

function intArg (name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}`)
    return n
  }
}

function collect (v: string, prev: string[] = []): string[] { return [...prev, v] }

function shareArg (v: string): number {
  const n = Number(v)
  if (!(n > 0 && n <= 1)) throw new InvalidArgumentError('must be a number in (0, 1], e.g. 0.2')
  return n
}

function print (json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${text}\n`)
}

const managerOption = (): Option => new Option('--manager <url>', 'manager HTTP URL (env CDN_MANAGER)').default(DEFAULT_MANAGER)
const tokenOption = (): Option => new Option('--token <token>', 'publisher token (env CDN_TOKEN)').default(process.env.CDN_TOKEN)

const program = new Command('cdn')
  .description('peer-to-peer content delivery network')
  .showHelpAfterError()

const manager = program.command('manager').description('the manager: publish pipeline, catalog, placement, API')
manager.command('start')
  .description('run a manager until SIGINT/SIGTERM')
  .option('--dir <dir>', 'data directory (catalog, identity, staging)', '.cdn/manager')
  .option('--http-host <host>', 'HTTP API address', '127.0.0.1')
  .option('--http-port <port>', 'HTTP API port', intArg('--http-port'), 7070)
  .option('--listen <multiaddr>', 'libp2p listen address (repeatable)', collect)
  .option('--publisher-token <token>', 'register a publisher token (repeatable; stored hashed)', collect)
  .option('--join-token <token>', 'register a node join token (repeatable; stored hashed)', collect)
  .option('--replicas <n>', 'default copies per chunk', intArg('--replicas', 1), 3)
  .option('--chunk-size <size>', 'chunk size', '1MiB')
  .option('--max-upload <size>', 'largest accepted upload', '64GiB')
  .option('--heartbeat <duration>', 'heartbeat interval told to nodes', '5s')
  .option('--dead-after <duration>', 'silence after which a node is dead (default 3 heartbeats)')
  .option('--reconcile <duration>', 'interval of the replication controller (mirror, trim, migrate, repair, drain, expiry)', '10s')
  .option('--move-share <share>', "share of the pool's egress its own moves may use", shareArg, 0.2)
  .option('--min-copies <n>', 'no chunk ever drops below this many confirmed copies through the pool\'s own deletes', intArg('--min-copies', 1), 2)
  .option('--max-copies <n>', 'most copies demand may raise a content to', intArg('--max-copies', 1), 8)
  .option('--json', 'print the ready line as JSON')
  .action(async (o) => {
    const { startManager } = await import('../manager/daemon.ts')
    const logger = createLogger('manager')
    const heartbeatMs = parseDuration(o.heartbeat)
    await runDaemon('manager', async () => startManager({
      dataDir: o.dir,
      httpHost: o.httpHost,
      httpPort: o.httpPort,
      listen: o.listen,
      publisherTokens: o.publisherToken,
      joinTokens: o.joinToken,
      replicas: o.replicas,
      chunkSize: parseSize(o.chunkSize),
      maxUploadBytes: parseSize(o.maxUpload),
      heartbeatMs,
      deadNodeMs: o.deadAfter != null ? parseDuration(o.deadAfter) : undefined,
      reconcileMs: parseDuration(o.reconcile),
      moveShare: o.moveShare,
      minCopies: o.minCopies,
      maxCopies: o.maxCopies,
      logger
    }), d => ({ peerId: d.peerId, http: d.http, multiaddrs: d.multiaddrs }), o.json === true, logger)
  })

const node = program.command('node').description('a distribution node')
node.command('start')
  .description('join an idle server to the pool and serve until SIGINT/SIGTERM')
  .requiredOption('--manager <multiaddr>', "manager's libp2p address with /p2p/<peerId> (its orders are the only ones obeyed)")
  .requiredOption('--join-token <token>', 'join token issued by the manager operator')
  .option('--data <dir>', 'data directory (blobs, identity)', '.cdn/node')
  .option('--capacity <size>', 'disk space to offer', '10GB')
  .option('--max-egress <rate>', 'egress cap, e.g. 50MB/s or unlimited', 'unlimited')
  .option('--zone <zone>', 'failure zone (copies of a chunk go to distinct zones)')
  .option('--http-host <host>', 'data plane address', '127.0.0.1')
  .option('--http-port <port>', 'data plane port (0: any)', intArg('--http-port'), 0)
  .option('--listen <multiaddr>', 'libp2p listen address (repeatable)', collect)
  .option('--bootstrap <multiaddr>', 'extra DHT peer (repeatable)', collect)
  .option('--keep-data', 'when removed from the pool, keep the blobs on disk instead of deleting them')
  .option('--json', 'print the ready line as JSON')
  .action(async (o) => {
    const { startNode } = await import('../node/daemon.ts')
    const { exitWhenEnded } = await import('./node-exit.ts')
    const logger = createLogger('node')
    await runDaemon('node', async () => exitWhenEnded(await startNode({
      dataDir: o.data,
      manager: o.manager,
      joinToken: o.joinToken,
      capacity: parseSize(o.capacity),
      maxEgress: parseRate(o.maxEgress),
      zone: o.zone,
      httpHost: o.httpHost,
      httpPort: o.httpPort,
      listen: o.listen,
      bootstrap: o.bootstrap,
      keepData: o.keepData === true,
      logger
    })), d => ({ peerId: d.peerId, http: d.http, multiaddrs: d.multiaddrs }), o.json === true, logger)
  })

node.command('drain <peer>')
  .description('move every copy off a node (peer id, unique prefix or the short form of cdn status); waits, with progress, until it is empty')
  .addOption(managerOption())
  .addOption(tokenOption())
  .option('--no-wait', 'return once the drain is requested')
  .option('--timeout <duration>', 'give up waiting after this long (the drain goes on)')
  .option('--json', 'print JSON')
  .action(async (peer: string, o) => {
    const r = await drainNode({ manager: o.manager, token: o.token }, peer, {
      wait: o.wait !== false,
      progress: o.json !== true,
      timeoutMs: o.timeout != null ? parseDuration(o.timeout) : undefined
    })
    print(o.json === true, r, r.drained ? `node ${r.peerId} is drained: it holds nothing; remove it with cdn node rm ${r.peerId}` : `node ${r.peerId} is draining (${r.copies} copies to move)`)
  })

node.command('rm <peer>')
  .description('remove a node from the pool (refused while it holds copies the pool needs: drain it first)')
  .addOption(managerOption())
  .addOption(tokenOption())
  .option('--json', 'print JSON')
  .action(async (peer: string, o) => {
    const r = await removeNode({ manager: o.manager, token: o.token }, peer)
    print(o.json === true, r, `node ${r.peerId} removed from the pool`)
  })

const proxy = program.command('proxy').description("the viewer's localhost gateway")
proxy.command('start')
  .description('serve http://127.0.0.1:8080/c/<id> until SIGINT/SIGTERM')
  .addOption(managerOption())
  .option('--port <port>', 'HTTP port', intArg('--port'), 8080)
  .option('--listen <host>', 'address to listen on (loopback unless told otherwise)', '127.0.0.1')
  .option('--cache-dir <dir>', 'disk cache of verified (still encrypted) chunks', '.cdn/proxy/cache')
  .option('--cache-size <size>', 'most disk the cache may use', '2GB')
  .option('--state-dir <dir>', 'where the proxy remembers its manager and nodes (to work while the manager is down)', '.cdn/proxy')
  .option('--suffix <suffix>', 'host suffix served when the proxy is used as a browser HTTP proxy', 'cdn')
  .option('--json', 'print the ready line as JSON')
  .action(async (o) => {
    const { startProxy } = await import('../proxy/daemon.ts')
    const logger = createLogger('proxy')
    await runDaemon('proxy', async () => startProxy({
      managerUrl: o.manager,
      httpHost: o.listen,
      httpPort: o.port,
      cacheDir: o.cacheDir,
      cacheBytes: parseSize(o.cacheSize),
      stateDir: o.stateDir,
      suffix: o.suffix,
      logger
    }),
      d => ({ http: d.http }), o.json === true, logger)
  })

program.command('publish <file>')
  .description('upload a file; prints its id, gateway URL and capability link')
  .addOption(managerOption())
  .addOption(tokenOption())
  .option('--replicas <n>', 'copies per chunk', intArg('--replicas', 1))
  .option('--name <name>', 'name shown to viewers (default: the file name)')
  .option('--type <mediaType>', 'media type (default: from the extension)')
  .option('--proxy <url>', 'proxy URL used in the printed gateway link (env CDN_PROXY)', DEFAULT_PROXY)
  .option('--ttl <duration>', 'delete the content everywhere this long after it is published, e.g. 30m, 7d')
  .option('--json', 'print one JSON line')
  .action(async (file: string, o) => {
    const r = await publish(file, { manager: o.manager, token: o.token, replicas: o.replicas, name: o.name, type: o.type, proxy: o.proxy, json: o.json === true, ttlMs: o.ttl != null ? parseDuration(o.ttl) : undefined })
    print(o.json === true, r, `id:   ${r.id}\nurl:  ${r.url}\nlink: ${r.link}`)
  })

program.command('get <id>')
  .description('download a content (id or cdn:// link) to a file, verifying every chunk')
  .requiredOption('-o, --output <file>', 'where to write')
  .addOption(managerOption())
  .option('--json', 'print one JSON line')
  .action(async (id: string, o) => {
    const r = await get(id, { manager: o.manager, output: o.output, json: o.json === true, logger: createLogger('get') })
    print(o.json === true, r, `${r.file}: ${r.size} bytes (${r.name}, ${r.type}) from ${Object.keys(r.sources).length} sources`)
  })

program.command('ls')
  .description('list published contents and their copies')
  .addOption(managerOption())
  .option('--json', 'print JSON')
  .action(async (o) => {
    const r = await listContents({ manager: o.manager })
    print(o.json === true, r, formatContents(r))
  })

program.command('rm <id>')
  .description('delete a content from every node and destroy its key')
  .addOption(managerOption())
  .addOption(tokenOption())
  .option('--json', 'print JSON')
  .action(async (id: string, o) => {
    const r = await removeContent({ manager: o.manager, token: o.token }, id)
    print(o.json === true, r, `deleted ${id}`)
  })

program.command('status')
  .description('show the pool of nodes')
  .addOption(managerOption())
  .option('--json', 'print JSON')
  .action(async (o) => {
    const r = await poolStatus({ manager: o.manager })
    print(o.json === true, r, formatStatus(r))
  })

program.command('events')
  .description("show the manager's event log, newest first")
  .addOption(managerOption())
  .option('--limit <n>', 'how many', intArg('--limit', 1), 50)
  .option('--json', 'print JSON')
  .action(async (o) => {
    const r = await listEvents({ manager: o.manager }, o.limit)
    print(o.json === true, r, formatEvents(r))
  })

program.command('up')
  .description('run a whole network on this machine (manager, nodes, proxy) until SIGINT/SIGTERM')
  .option('--nodes <n>', 'number of nodes', intArg('--nodes', 1), 3)
  .option('--dir <dir>', 'where data and logs go', '.cdn/up')
  .option('--manager-port <port>', 'manager HTTP port (0: any)', intArg('--manager-port'), 7070)
  .option('--proxy-port <port>', 'proxy HTTP port (0: any)', intArg('--proxy-port'), 8080)
  .option('--replicas <n>', 'default copies per chunk', intArg('--replicas', 1))
  .option('--chunk-size <size>', 'chunk size')
  .option('--heartbeat <duration>', 'node heartbeat interval')
  .option('--dead-after <duration>', 'silence after which a node is dead')
  .option('--reconcile <duration>', 'interval of the replication controller')
  .option('--move-share <share>', "share of the pool's egress its own moves may use", shareArg)
  .option('--min-copies <n>', 'fewest confirmed copies of any chunk', intArg('--min-copies', 1))
  .option('--max-copies <n>', 'most copies demand may raise a content to', intArg('--max-copies', 1))
  .option('--node-zones <list>', 'comma-separated failure zones, given to the nodes in turn (copies of a chunk go to distinct zones)')
  .option('--node-capacity <size>', 'capacity of each node', '10GB')
  .option('--node-egress <rate>', 'egress cap of each node', 'unlimited')
  .option('--proxy-cache <size>', "size of the proxy's chunk cache (0 disables it)", '2GB')
  .option('--json', 'print one JSON line when ready')
  .action(async (o) => {
    const net = await startLocalNetwork({
      nodes: o.nodes, dir: o.dir, managerPort: o.managerPort, proxyPort: o.proxyPort, replicas: o.replicas,
      chunkSize: o.chunkSize, heartbeat: o.heartbeat, deadAfter: o.deadAfter, nodeCapacity: o.nodeCapacity, nodeEgress: o.nodeEgress, proxyCache: o.proxyCache,
      reconcile: o.reconcile, moveShare: o.moveShare, minCopies: o.minCopies, maxCopies: o.maxCopies,
      nodeZones: o.nodeZones != null ? String(o.nodeZones).split(',').map((z: string) => z.trim()).filter((z: string) => z !== '') : undefined
    })
    const s = net.summary
    print(o.json === true, s, [
      `dashboard: ${s.proxy}/`,
      `manager:   ${s.manager}`,
      `nodes:     ${s.nodes.map(n => n.http).join(' ')}`,
      `logs:      ${join(s.dir, 'logs')}`,
      '',
      'try:',
      `  export CDN_MANAGER=${s.manager} CDN_TOKEN=${s.token} CDN_PROXY=${s.proxy}`,
      '  npm run -s cdn -- publish movie.mp4',
      '  npm run -s cdn -- ls',
      '',
      'Ctrl-C stops everything.'
    ].join('\n'))
    for (const child of net.children) {
      child.proc.once('exit', (code, signal) => {
        if (!stopping) process.stderr.write(`${child.role} (pid ${child.proc.pid}) exited: ${signal ?? code}\n`)
      })
    }
    let stopping = false
    const stop = (): void => {
      if (stopping) return
      stopping = true
      stopChildren(net.children).then(() => process.exit(0), (err: unknown) => {
        process.stderr.write(`cdn: ${describeError(err)}\n`)
        process.exit(1)
      })
    }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
  })

try {
  await program.parseAsync(process.argv)
} catch (err) {
  // One line for people and scripts; the code lets scripts branch without parsing prose.
  const code = err instanceof CdnError ? ` [${err.code}]` : ''
  process.stderr.write(`cdn: ${describeError(err)}${code}\n`)
  process.exit(1)
}
