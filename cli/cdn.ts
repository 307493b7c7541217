#!/usr/bin/env node
/**
 * The `cdn` command: daemons (manager, node, proxy), publishing and fetching,
 * pool inspection, and `cdn up` for a whole local network.
 */
import { Command, InvalidArgumentError, Option } from 'commander'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createCommandLogger, createLogger } from '../core/log.ts'
import { BadInputError, CdnError, describeError } from '../core/errors.ts'
import { loadCa } from '../core/tls-client.ts'
import { parseDuration, parseRate, parseSize } from '../core/units.ts'
import { runDaemon } from './daemon-runner.ts'
import { publish } from './publish.ts'
import { get } from './get.ts'
import { formatContents, formatEvents, formatStatus, listContents, listEvents, poolStatus, removeContent } from './pool-commands.ts'
import { startLocalNetwork } from './local-network.ts'
import { ChildSupervisor } from './child-supervisor.ts'
import { drainNode, removeNode } from './node-commands.ts'
import { addAddressOptions, addressConfig, namingPortFlags } from './address-options.ts'
import { withConfigFile } from './config-options.ts'
import { cliVersion, onUnexpectedError, requireWritableDir } from './cli-basics.ts'
import { joinInstructions, showJoinCommand } from './join-commands.ts'
import type { ApiOptions } from './manager-api.ts'
import { clientToken, configuredTokens, readOneToken } from './secrets.ts'
import { createToken, formatCreatedToken, formatTokens, listTokens, revokeToken, share } from './token-commands.ts'

// Defaults that come from the environment are resolved when a command runs and
// never given to commander, whose help would print their values.
const managerUrl = (o: { manager?: string }): string => o.manager ?? process.env.CDN_MANAGER ?? 'http://127.0.0.1:7070'
const proxyUrl = (o: { proxy?: string }): string => o.proxy ?? process.env.CDN_PROXY ?? 'http://127.0.0.1:8080'

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

const managerOption = (): Option => new Option('--manager <url>', 'manager API URL, http:// or https:// (default: $CDN_MANAGER, else http://127.0.0.1:7070)')
const tokenFileOption = (): Option => new Option('--token-file <file>', 'file holding your token (default: the token in $CDN_TOKEN)')
const caOption = (): Option => new Option('--ca <file>', "PEM certificate of the CA that signed an https:// manager's certificate (default: the file named by $CDN_CA, else the system's CAs)")
const proxyOption = (): Option => new Option('--proxy <url>', 'proxy URL used in printed gateway links (default: $CDN_PROXY, else http://127.0.0.1:8080)')

/** A command that calls the manager's API: where it is, who calls, which CA to trust. */
function apiCommand (cmd: Command): Command {
  return cmd.addOption(managerOption()).addOption(tokenFileOption()).addOption(caOption())
}

async function apiOptions (o: { manager?: string, tokenFile?: string, ca?: string }): Promise<ApiOptions> {
  return { manager: managerUrl(o), token: await clientToken(o.tokenFile), ca: await loadCa(o.ca) }
}

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

function durationMs (v: string | undefined): number | undefined {
  return v == null ? undefined : parseDuration(v)
}

const program = new Command('cdn')
  .description('peer-to-peer content delivery network')
  .version(cliVersion(), '-V, --version')
  .option('--verbose', "log lines on stderr (JSON) for the commands people run (get, publish, …); CDN_LOG_LEVEL sets the level too")
  .showHelpAfterError()
const verbose = (): boolean => program.opts().verbose === true
onUnexpectedError(verbose)

const manager = program.command('manager').description('the manager: publish pipeline, catalog, placement, API')
const managerStart = manager.command('start')
  .description('run a manager until SIGINT/SIGTERM; prints the command that joins a node to it')
  .option('--dir <dir>', 'data directory (catalog, identity, ports, join token, staging)', '.cdn/manager')
addAddressOptions(managerStart, { http: '7070', p2p: '7071' })
withConfigFile(managerStart)
managerStart
  .option('--publisher-token-file <file>', 'register the publisher tokens in this file, one per line (repeatable; also $CDN_PUBLISHER_TOKENS, comma-separated; stored hashed)', collect)
  .option('--join-token-file <file>', 'register the node join tokens in this file, one per line (repeatable; also $CDN_JOIN_TOKENS, comma-separated; stored hashed)', collect)
  .option('--tls-cert <file>', 'serve the API over HTTPS with this PEM certificate (chain); needs --tls-key')
  .option('--tls-key <file>', 'PEM private key of --tls-cert')
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
    await runDaemon('manager', async () => await namingPortFlags(async () => await startManager({
      dataDir: o.dir,
      ...addressConfig(o),
      defaultPorts: { http: 7070, p2p: 7071 },
      publisherTokens: await configuredTokens(o.publisherTokenFile, 'CDN_PUBLISHER_TOKENS'),
      joinTokens: await configuredTokens(o.joinTokenFile, 'CDN_JOIN_TOKENS'),
      tls: await managerTls(o),
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
    }), { http: '--http-port', p2p: '--p2p-port' }), d => ({ peerId: d.peerId, http: d.http, multiaddrs: d.multiaddrs }), o.json === true, logger, async () => await joinInstructions(o.dir))
  })

manager.command('join-command')
  .description('print the command that joins a new node to the manager of this data directory (the token stays in its file)')
  .option('--dir <dir>', "the manager's data directory", '.cdn/manager')
  .option('--json', 'print { command, manager, tokenFile, env }')
  .action(async (o) => {
    const r = await showJoinCommand(o.dir)
    print(o.json === true, r, r.command)
  })

const node = program.command('node').description('a distribution node')
const nodeStart = node.command('start')
  .description('join an idle server to the pool and serve until SIGINT/SIGTERM')
  .option('--manager <multiaddr>', "manager's libp2p address with /p2p/<peerId> (its orders are the only ones obeyed); required, here or in --config")
  .option('--join-token-file <file>', 'file holding the join token issued by the manager operator (default: $CDN_JOIN_TOKEN)')
  .option('--data <dir>', 'data directory (blobs, identity, ports)', '.cdn/node')
  .option('--capacity <size>', 'disk space to offer', '10GB')
  .option('--max-egress <rate>', 'egress cap, e.g. 50MB/s or unlimited', 'unlimited')
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
    }), { http: '--http-port', p2p: '--p2p-port' })), d => ({ peerId: d.peerId, http: d.http, multiaddrs: d.multiaddrs }), o.json === true, logger)
  })

apiCommand(node.command('drain <peer>'))
  .description('move every copy off a node (peer id, unique prefix or the short form of cdn status); waits, with progress, until it is empty (admin token)')
  .option('--no-wait', 'return once the drain is requested')
  .option('--timeout <duration>', 'give up waiting after this long (the drain goes on)')
  .option('--json', 'print JSON')
  .action(async (peer: string, o) => {
    const r = await drainNode(await apiOptions(o), peer, {
      wait: o.wait !== false,
      progress: o.json !== true,
      timeoutMs: o.timeout != null ? parseDuration(o.timeout) : undefined
    })
    print(o.json === true, r, r.drained ? `node ${r.peerId} is drained: it holds nothing; remove it with cdn node rm ${r.peerId}` : `node ${r.peerId} is draining (${r.copies} copies to move)`)
  })

apiCommand(node.command('rm <peer>'))
  .description('remove a node from the pool (refused while it holds copies the pool needs: drain it first) (admin token)')
  .option('--json', 'print JSON')
  .action(async (peer: string, o) => {
    const r = await removeNode(await apiOptions(o), peer)
    print(o.json === true, r, `node ${r.peerId} removed from the pool`)
  })

const proxy = program.command('proxy').description("the viewer's localhost gateway")
const proxyStart = proxy.command('start')
  .description('serve http://127.0.0.1:8080/c/<id> until SIGINT/SIGTERM')
  .addOption(managerOption())
  .option('--port <port>', 'HTTP port', intArg('--port'), 8080)
  .option('--listen <host>', 'address to listen on (loopback unless told otherwise)', '127.0.0.1')
  .option('--announce <url>', 'http://host:port browsers are told to use (the PAC file; default: the listen address, or the first external interface address on a wildcard)')
  .option('--cache-dir <dir>', 'disk cache of verified (still encrypted) chunks', '.cdn/proxy/cache')
  .option('--cache-size <size>', 'most disk the cache may use', '2GB')
  .option('--state-dir <dir>', 'where the proxy remembers its manager and nodes (to work while the manager is down)', '.cdn/proxy')
  .option('--suffix <suffix>', 'host suffix served when the proxy is used as a browser HTTP proxy', 'cdn')
  .addOption(caOption())
  .option('--json', 'print the ready line as JSON')
withConfigFile(proxyStart)
proxyStart
  .action(async (o) => {
    const { startProxy } = await import('../proxy/daemon.ts')
    const logger = createLogger('proxy')
    await runDaemon('proxy', async () => await namingPortFlags(async () => await startProxy({
      managerUrl: managerUrl(o),
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
    d => ({ http: d.http }), o.json === true, logger)
  })

apiCommand(program.command('publish <file>'))
  .description('upload a file; prints its id, gateway URL and link (publisher or admin token)')
  .addOption(proxyOption())
  .option('--replicas <n>', 'copies per chunk', intArg('--replicas', 1))
  .option('--name <name>', 'name shown to viewers (default: the file name)')
  .option('--type <mediaType>', 'media type (default: from the extension)')
  .option('--ttl <duration>', 'delete the content everywhere this long after it is published, e.g. 30m, 7d')
  .option('--private', 'resolvable only with a capability (cdn share) or a token allowed to read it')
  .option('--json', 'print one JSON line')
  .action(async (file: string, o) => {
    const r = await publish(file, { ...await apiOptions(o), replicas: o.replicas, name: o.name, type: o.type, proxy: proxyUrl(o), json: o.json === true, ttlMs: durationMs(o.ttl), private: o.private === true })
    print(o.json === true, r, `id:   ${r.id}\nurl:  ${r.url}\nlink: ${r.link}${r.private ? `\nprivate: viewers need a capability link, from cdn share ${r.id}` : ''}`)
  })

apiCommand(program.command('share <id>'))
  .description('print a link that opens a content: a capability that expires (owner or admin), or with --key-link the bearer key link')
  .addOption(proxyOption())
  .option('--ttl <duration>', 'how long the capability works, e.g. 1h, 7d (default 24h, at most 365d)')
  .option('--key-link', 'print cdn://<id>?k=<key> instead: works with the manager down, never expires, cannot be revoked')
  .option('--json', 'print one JSON line')
  .action(async (id: string, o) => {
    const r = await share(await apiOptions(o), id, { proxy: proxyUrl(o), ttlMs: durationMs(o.ttl), keyLink: o.keyLink === true })
    print(o.json === true, r, `link:    ${r.link}\nurl:     ${r.url}\nexpires: ${r.expiresAt ?? 'never (a key link gives the content away for good)'}`)
  })

const token = program.command('token').description('tokens of the pool (admin token)')
apiCommand(token.command('create'))
  .description('make a token; prints it once')
  .requiredOption('--role <role>', 'admin, publisher, reader or join')
  .requiredOption('--name <name>', 'who or what it is for')
  .option('--ttl <duration>', 'expire it after this long, e.g. 30d (default: never)')
  .option('--json', 'print one JSON line')
  .action(async (o) => {
    const r = await createToken(await apiOptions(o), { role: o.role, name: o.name, ttlMs: durationMs(o.ttl) })
    print(o.json === true, r, formatCreatedToken(r))
  })

apiCommand(token.command('ls'))
  .description('list tokens (never their secret)')
  .option('--json', 'print JSON')
  .action(async (o) => {
    const r = await listTokens(await apiOptions(o))
    print(o.json === true, r, formatTokens(r))
  })

apiCommand(token.command('revoke <id>'))
  .description('revoke a token for good: its next request is refused')
  .option('--json', 'print JSON')
  .action(async (id: string, o) => {
    const r = await revokeToken(await apiOptions(o), id)
    print(o.json === true, r, `revoked token ${r.id}`)
  })

program.command('get <id>')
  .description('download a content (id or cdn:// link) to a file, verifying every chunk')
  .requiredOption('-o, --output <file>', 'where to write')
  .addOption(managerOption())
  .addOption(caOption())
  .option('--json', 'print one JSON line')
  .action(async (id: string, o) => {
    await requireWritableDir(o.output)
    const r = await get(id, { manager: managerUrl(o), ca: await loadCa(o.ca), output: o.output, json: o.json === true, logger: createCommandLogger('get', verbose()) })
    print(o.json === true, r, `${r.file}: ${r.size} bytes (${r.name}, ${r.type}) from ${Object.keys(r.sources).length} sources`)
  })

apiCommand(program.command('ls'))
  .description('list published contents and their copies (admin, publisher or reader token)')
  .option('--json', 'print JSON')
  .action(async (o) => {
    const r = await listContents(await apiOptions(o))
    print(o.json === true, r, formatContents(r))
  })

apiCommand(program.command('rm <id>'))
  .description('delete a content from every node and destroy its key (its publisher or an admin)')
  .option('--json', 'print JSON')
  .action(async (id: string, o) => {
    const r = await removeContent(await apiOptions(o), id)
    print(o.json === true, r, `deleted ${id}`)
  })

apiCommand(program.command('status'))
  .description('show the pool of nodes (admin, publisher or reader token)')
  .option('--json', 'print JSON')
  .action(async (o) => {
    const r = await poolStatus(await apiOptions(o))
    print(o.json === true, r, formatStatus(r))
  })

apiCommand(program.command('events'))
  .description("show the manager's event log, newest first (admin, publisher or reader token)")
  .option('--limit <n>', 'how many', intArg('--limit', 1), 50)
  .option('--json', 'print JSON')
  .action(async (o) => {
    const r = await listEvents(await apiOptions(o), o.limit)
    print(o.json === true, r, formatEvents(r))
  })

program.command('up')
  .description('run a whole network on this machine (manager, nodes, proxy) until SIGINT/SIGTERM')
  .option('--nodes <n>', 'number of nodes', intArg('--nodes', 1), 3)
  .option('--dir <dir>', 'where data and logs go', '.cdn/up')
  .option('--manager-port <port>', 'manager HTTP port (0: any)', intArg('--manager-port'), 7070)
  .option('--manager-p2p-port <port>', "manager libp2p port, in every node's --manager address (0: any; default 7071, or any when --manager-port is 0)", intArg('--manager-p2p-port'))
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
  .option('--no-restart', 'leave a child that dies unexpectedly dead (default: restart it, with backoff)')
  .option('--json', 'print one JSON line when ready')
  .action(async (o) => {
    const net = await startLocalNetwork({
      nodes: o.nodes, dir: o.dir, managerPort: o.managerPort, managerP2pPort: o.managerP2pPort, proxyPort: o.proxyPort, replicas: o.replicas,
      chunkSize: o.chunkSize, heartbeat: o.heartbeat, deadAfter: o.deadAfter, nodeCapacity: o.nodeCapacity, nodeEgress: o.nodeEgress, proxyCache: o.proxyCache,
      reconcile: o.reconcile, moveShare: o.moveShare, minCopies: o.minCopies, maxCopies: o.maxCopies,
      nodeZones: o.nodeZones != null ? String(o.nodeZones).split(',').map((z: string) => z.trim()).filter((z: string) => z !== '') : undefined
    })
    const s = net.summary
    print(o.json === true, s, [
      `dashboard: ${s.proxy}/`,
      `manager:   ${s.manager}`,
      `multiaddr: ${s.managerMultiaddr}`,
      `nodes:     ${s.nodes.map(n => n.http).join(' ')}`,
      `logs:      ${join(s.dir, 'logs')}`,
      `admin:     the admin token is in ${join(s.dir, 'manager', 'admin.token')} (cdn token … --token-file that file)`,
      '',
      'join one more node:',
      `  ${s.joinCommand}`,
      '',
      'try:',
      `  export CDN_MANAGER=${s.manager} CDN_TOKEN=${s.token} CDN_PROXY=${s.proxy}`,
      '  npm run -s cdn -- publish movie.mp4',
      '  npm run -s cdn -- ls',
      '',
      'Ctrl-C stops everything.'
    ].join('\n'))
    const supervisor = new ChildSupervisor(net.children, { restart: o.restart !== false, say: line => { process.stderr.write(`${line}\n`) } })
    let stopping = false
    const stop = (): void => {
      if (stopping) return
      stopping = true
      supervisor.stop().then(() => process.exit(0), (err: unknown) => {
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
