/** `cdn up`: a whole network on this machine, supervised until SIGINT/SIGTERM. */
import type { Command } from 'commander'
import { join } from 'node:path'
import { describeError } from '../core/errors.ts'
import { sizeText } from '../core/units.ts'
import { MANAGER_DEFAULTS } from '../manager/defaults.ts'
import { NODE_DEFAULTS } from '../node/defaults.ts'
import { PROXY_DEFAULTS } from '../proxy/defaults.ts'
import { ChildSupervisor } from './child-supervisor.ts'
import { intArg, print, shareArg } from './cli-options.ts'
import { exitOnSignal } from './daemon-runner.ts'
import { startLocalNetwork, type LocalNetwork } from './local-network.ts'

export function addUpCommand (program: Command): void {
  program.command('up')
    .description('run a whole network on this machine (manager, nodes, proxy) until SIGINT/SIGTERM')
    .option('--nodes <n>', 'number of nodes', intArg('--nodes', 1), 3)
    .option('--managers <n>', 'number of managers sharing the pool (more than one needs --postgres)', intArg('--managers', 1), 1)
    .option('--postgres', 'keep the catalog in a PostgreSQL cluster of its own, in --dir/postgres (needs the postgresql package)')
    .option('--dir <dir>', 'where data and logs go', '.cdn/up')
    .option('--manager-port <port>', 'manager HTTP port (0: any)', intArg('--manager-port'), MANAGER_DEFAULTS.httpPort)
    .option('--manager-p2p-port <port>', `manager libp2p port, in every node's --manager address (0: any; default ${MANAGER_DEFAULTS.p2pPort}, or any when --manager-port is 0)`, intArg('--manager-p2p-port'))
    .option('--proxy-port <port>', 'proxy HTTP port (0: any)', intArg('--proxy-port'), PROXY_DEFAULTS.httpPort)
    .option('--replicas <n>', 'default copies per chunk', intArg('--replicas', 1))
    .option('--chunk-size <size>', 'size of fixed chunks')
    .option('--chunking <mode>', 'how the manager cuts uploads: fixed or cdc (by content)')
    .option('--heartbeat <duration>', 'node heartbeat interval')
    .option('--dead-after <duration>', 'silence after which a node is dead')
    .option('--reconcile <duration>', 'interval of the replication controller')
    .option('--move-share <share>', "share of the pool's egress its own moves may use", shareArg)
    .option('--min-copies <n>', 'fewest confirmed copies of any chunk', intArg('--min-copies', 1))
    .option('--max-copies <n>', 'most copies demand may raise a content to', intArg('--max-copies', 1))
    .option('--node-zones <list>', 'comma-separated failure zones, given to the nodes in turn (copies of a chunk go to distinct zones)')
    .option('--node-capacity <size>', 'capacity of each node', sizeText(NODE_DEFAULTS.capacity))
    .option('--node-egress <rate>', 'egress cap of each node', sizeText(NODE_DEFAULTS.maxEgress))
    .option('--proxy-cache <size>', "size of the proxy's chunk cache (0 disables it)", sizeText(PROXY_DEFAULTS.cacheBytes))
    .option('--no-restart', 'leave a child that dies unexpectedly dead (default: restart it, with backoff)')
    .option('--json', 'print one JSON line when ready')
    .action(async (o) => {
      const net = await startLocalNetwork({
        nodes: o.nodes, managers: o.managers, postgres: o.postgres === true, dir: o.dir, managerPort: o.managerPort, managerP2pPort: o.managerP2pPort, proxyPort: o.proxyPort, replicas: o.replicas,
        chunkSize: o.chunkSize, chunking: o.chunking, heartbeat: o.heartbeat, deadAfter: o.deadAfter, nodeCapacity: o.nodeCapacity, nodeEgress: o.nodeEgress, proxyCache: o.proxyCache,
        reconcile: o.reconcile, moveShare: o.moveShare, minCopies: o.minCopies, maxCopies: o.maxCopies,
        nodeZones: o.nodeZones != null ? String(o.nodeZones).split(',').map((z: string) => z.trim()).filter((z: string) => z !== '') : undefined
      })
      print(o.json === true, net.summary, readyText(net.summary))
      const supervisor = new ChildSupervisor(net.children, { restart: o.restart !== false, say: line => { process.stderr.write(`${line}\n`) } })
      exitOnSignal(async () => {
        await supervisor.stop()
        await net.cleanup()
      }, (err) => { process.stderr.write(`cdn: ${describeError(err)}\n`) })
    })
}

function readyText (s: LocalNetwork['summary']): string {
  return [
    `dashboard: ${s.proxy}/`,
    `manager:   ${s.managers.map(m => m.url).join(' ')}`,
    `multiaddr: ${s.managerMultiaddr}`,
    `nodes:     ${s.nodes.map(n => n.http).join(' ')}`,
    `logs:      ${join(s.dir, 'logs')}`,
    `admin:     the admin token is in ${join(s.dir, 'manager', 'admin.token')} (cdn token … --token-file that file)`,
    '',
    'join one more node:',
    `  ${s.joinCommand}`,
    '',
    'try:',
    `  export CDN_MANAGER=${s.managers.map(m => m.url).join(',')} CDN_TOKEN=${s.token} CDN_PROXY=${s.proxy}`,
    '  npm run -s cdn -- publish movie.mp4',
    '  npm run -s cdn -- ls',
    '',
    'Ctrl-C stops everything.'
  ].join('\n')
}
