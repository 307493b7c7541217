/**
 * `npm run testbed`: the pool across real network hosts. Every role gets a
 * Linux network namespace of its own (its own interface, address and
 * kernel-shaped link), and the testbed walks the path an operator and a
 * viewer walk on real machines:
 *
 *   1. the manager starts on its host, listening on 0.0.0.0;
 *   2. each node host runs the join command the manager printed;
 *   3. the client host publishes a file (`cdn publish`);
 *   4. the client plays it through the proxy on the proxy's host, with Range
 *      requests, then whole (that rate against the sum of the node links is
 *      the efficiency);
 *   5. one node host loses power (every process in it killed) and the pool
 *      repairs itself; the content is fetched again and compared;
 *   6. a second node host dies: too few nodes are left for three copies, and
 *      the manager says so (`repair-blocked`, `cdn status`); a new node host
 *      joins, receives copies, and the pool is whole again.
 *
 * It ends with one JSON line `{ hosts, nodes, identical, repairedSeconds,
 * efficiency, … }` and tears everything down (namespaces, links, processes)
 * on success, failure and Ctrl-C. Needs root.
 *
 *   node testbed/run.ts [--nodes 4] [--size 48MiB] [--rate 10MB/s] [--keep]
 */
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { describeError } from '../core/errors.ts'
import { parseRate, parseSize } from '../core/units.ts'
import { makeRandomFile, sliceHash } from '../bench/files.ts'
import { Agent } from './agent-client.ts'
import { Testbed, TestbedError, type HostSpec } from './netns.ts'
import { CDN, joinCommandOf, joinNode, NODE, startManager, startProxy, waitFor, type Daemon } from './pool.ts'

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '4' },
    size: { type: 'string', default: '48MiB' },
    rate: { type: 'string', default: '10MB/s' },
    keep: { type: 'boolean', default: false }
  }
})
const NODES = Number(values.nodes)
const SIZE = parseSize(values.size)
const RATE = parseRate(values.rate)
const REPLICAS = 3
if (!Number.isSafeInteger(NODES) || NODES < 4 || NODES > 60) throw new TestbedError('--nodes must be 4 to 60')
if (!Number.isFinite(RATE) || RATE <= 0) throw new TestbedError('--rate must be a finite rate, e.g. 10MB/s')

function log (msg: string): void {
  process.stderr.write(`[testbed ${new Date().toISOString().slice(11, 19)}] ${msg}\n`)
}

interface Outcome {
  hosts: number
  nodes: number
  identical: boolean
  repairedSeconds: number
  efficiency: number
  downloadMBps: number
  linksMBps: number
  repairBlocked: string
  newNodeFirstCopiesSeconds: number
  newNodeRepairedSeconds: number
}

async function scenario (bed: Testbed, work: string, logs: string): Promise<Outcome> {
  const token = randomBytes(18).toString('base64url')
  const managerDir = join(work, 'manager')
  const manager = await startManager(bed, 'manager', { dir: managerDir, logs, publisherToken: token, args: ['--heartbeat', '1s', '--dead-after', '4s', '--reconcile', '1s'] })
  const api = String(manager.info.http)
  log(`manager ${manager.info.multiaddrs[0]}, API ${api}`)
  if (!api.startsWith(`http://${bed.address('manager')}:`)) throw new TestbedError(`the manager announces ${api}, not its host's address`)

  const join_ = await joinCommandOf(managerDir)
  log(`join command: ${join_.command}`)
  const client = new Agent(bed, 'client', join(logs, 'client-agent.log'))
  const nodes = new Map<string, Daemon>()
  await Promise.all(Array.from({ length: NODES }, async (_, i) => {
    const host = `node${i + 1}`
    const d = await joinNode(bed, host, join_.command, { dir: join(work, host), logs, args: ['--capacity', '10GB'] })
    if (!String(d.info.http).startsWith(`http://${bed.address(host)}:`)) throw new TestbedError(`${host} announces ${String(d.info.http)}, not its host's address`)
    nodes.set(host, d)
  }))
  const peerOf = (host: string): string => String(nodes.get(host)!.info.peerId)
  const poolNodes = async (): Promise<any[]> => (await client.json(`${api}/api/nodes`, token)).nodes
  await waitFor(`${NODES} nodes alive`, async () => (await poolNodes()).filter(n => n.state === 'alive').length >= NODES ? true : undefined, 60_000)
  log(`${NODES} node hosts joined`)

  const file = join(work, 'movie.bin')
  await makeRandomFile(file, SIZE)
  const wholeHash = await sliceHash(file, 0, SIZE)
  const published = await bed.run('client', [NODE, CDN, 'publish', file, '--manager', api, '--replicas', String(REPLICAS), '--json'], { env: { CDN_TOKEN: token, CDN_LOG_LEVEL: 'error' } })
  const content = JSON.parse(published.stdout.trim().split('\n').at(-1)!)
  log(`published ${String(content.id)} from the client host (${SIZE} bytes, R=${REPLICAS})`)

  const proxy = await startProxy(bed, 'proxy', api, { dir: join(work, 'proxy'), logs, args: ['--cache-size', '0'] })
  const url = `http://${bed.address('proxy')}:8080/c/${String(content.id)}`
  log(`proxy ${String(proxy.info.http)}`)

  // A player's requests: the start, a seek into the middle across chunk boundaries, the end.
  const mid = Math.floor(SIZE / 2) - 12345
  const ranges: Array<[string, number, number]> = [['bytes=0-999', 0, 1000], [`bytes=${mid}-${mid + 3 * 1048576 + 16}`, mid, mid + 3 * 1048576 + 17], ['bytes=-1000', SIZE - 1000, SIZE]]
  for (const [range, start, end] of ranges) {
    const r = await client.get(url, range)
    const want = await sliceHash(file, start, end)
    if (r.status !== 206 || r.sha256 !== want || r.headers['content-range'] !== `bytes ${start}-${end - 1}/${SIZE}`) {
      throw new TestbedError(`Range ${range} through the proxy: status ${r.status}, ${r.headers['content-range'] ?? 'no content-range'}, ${r.sha256 === want ? 'right' : 'wrong'} bytes`)
    }
  }
  log('Range requests through the proxy host: right status, headers and bytes')

  const whole = await client.get(url)
  if (whole.status !== 200 || whole.sha256 !== wholeHash) throw new TestbedError(`whole GET: status ${whole.status}, ${whole.sha256 === wholeHash ? 'right' : 'wrong'} bytes`)
  const downloadMBps = SIZE / whole.seconds / 1e6
  const linksMBps = NODES * RATE / 1e6
  log(`whole file: ${downloadMBps.toFixed(1)} MB/s over ${NODES} links of ${(RATE / 1e6).toFixed(1)} MB/s`)

  const health = async (): Promise<any> => await client.json(`${api}/api/health/replication`, token)
  const deadAndWhole = (host: string) => async (): Promise<true | undefined> => {
    const n = (await poolNodes()).find(x => x.peerId === peerOf(host))
    const h = await health()
    return n?.state === 'dead' && h.belowBase === 0 && h.lowest >= REPLICAS ? true : undefined
  }

  // A node host loses power.
  const victim = `node${NODES}`
  const killedAt = performance.now()
  const killed = await bed.killHost(victim)
  log(`killed ${victim} (${killed} processes); waiting for repair`)
  await waitFor('the pool to repair the lost copies', deadAndWhole(victim), 180_000, 500)
  const repairedSeconds = (performance.now() - killedAt) / 1000
  log(`repaired in ${repairedSeconds.toFixed(1)} s`)
  const again = await client.get(url)
  const identical = again.status === 200 && again.sha256 === wholeHash
  log(`fetched again after the repair: ${identical ? 'identical' : 'DIFFERENT'}`)

  // More hosts die until fewer than R nodes are left: the manager must say why it cannot repair.
  const down: string[] = []
  for (let i = NODES - 1; NODES - 1 - down.length >= REPLICAS; i--) {
    down.push(`node${i}`)
    await bed.killHost(`node${i}`)
  }
  log(`killed ${down.join(', ')}: ${NODES - 1 - down.length} nodes left for ${REPLICAS} copies`)
  await waitFor('the manager to report that repair is blocked', async () => {
    const b = ((await health()).repairBlocked ?? []) as Array<{ reason: string }>
    return b.some(x => x.reason === 'too-few-nodes') ? true : undefined
  }, 60_000, 500)
  const status = await bed.run('client', [NODE, CDN, 'status', '--manager', api], { env: { CDN_TOKEN: token, CDN_LOG_LEVEL: 'error' } })
  const repairBlocked = (status.stdout.split('\n').find(l => l.includes('more node')) ?? '').trim()
  if (repairBlocked === '') throw new TestbedError(`cdn status does not say that repair is blocked:\n${status.stdout}`)
  log(`cdn status on the client host: ${repairBlocked}`)

  // A new server joins from its own host and receives the copies the pool lacks.
  const newcomer = `node${NODES + 1}`
  await bed.addHost({ name: newcomer, octet: 10 + NODES + 1, rate: RATE })
  const joinedAt = performance.now()
  const fresh = await joinNode(bed, newcomer, join_.command, { dir: join(work, newcomer), logs, args: ['--capacity', '10GB'] })
  nodes.set(newcomer, fresh)
  await waitFor(`${newcomer} to hold its first copies`, async () => {
    const n = (await poolNodes()).find(x => x.peerId === peerOf(newcomer))
    return n != null && n.copies > 0 ? true : undefined
  }, 120_000, 200)
  const newNodeFirstCopiesSeconds = (performance.now() - joinedAt) / 1000
  await waitFor('the pool to be whole again', async () => {
    const h = await health()
    return h.belowBase === 0 && h.lowest >= REPLICAS ? true : undefined
  }, 180_000, 500)
  const newNodeRepairedSeconds = (performance.now() - joinedAt) / 1000
  log(`${newcomer}: first copies after ${newNodeFirstCopiesSeconds.toFixed(1)} s, pool whole after ${newNodeRepairedSeconds.toFixed(1)} s`)
  const last = await client.get(url)
  const stillIdentical = last.status === 200 && last.sha256 === wholeHash
  log(`fetched again from the surviving and new nodes: ${stillIdentical ? 'identical' : 'DIFFERENT'}`)
  client.close()

  return {
    hosts: NODES + 1 + 3,
    nodes: NODES + 1,
    identical: identical && stillIdentical,
    repairedSeconds: round(repairedSeconds),
    efficiency: round(downloadMBps / linksMBps, 3),
    downloadMBps: round(downloadMBps),
    linksMBps: round(linksMBps),
    repairBlocked,
    newNodeFirstCopiesSeconds: round(newNodeFirstCopiesSeconds),
    newNodeRepairedSeconds: round(newNodeRepairedSeconds)
  }
}

function round (n: number, digits = 1): number {
  return Number(n.toFixed(digits))
}

const work = await mkdtemp(join(tmpdir(), 'cdn-testbed-'))
const logs = join(work, 'logs')
await mkdir(logs, { recursive: true })
const hosts: HostSpec[] = [
  { name: 'manager', octet: 2 },
  { name: 'proxy', octet: 3 },
  { name: 'client', octet: 4 },
  ...Array.from({ length: NODES }, (_, i) => ({ name: `node${i + 1}`, octet: 11 + i, rate: RATE }))
]
let bed: Testbed | undefined
let interrupted = false
const teardown = async (): Promise<void> => {
  await bed?.destroy()
  if (!values.keep) await rm(work, { recursive: true, force: true })
}
const onSignal = (signal: NodeJS.Signals): void => {
  if (interrupted) return
  interrupted = true
  log(`${signal}: tearing down`)
  teardown().finally(() => { process.exit(130) })
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

let exitCode = 1
try {
  bed = await Testbed.create(hosts)
  log(`${hosts.length} hosts on ${bed.subnet}.0/24, node links shaped to ${(RATE / 1e6).toFixed(1)} MB/s each way; work dir ${work}`)
  const outcome = await scenario(bed, work, logs)
  process.stdout.write(`${JSON.stringify(outcome)}\n`)
  exitCode = outcome.identical ? 0 : 1
} catch (err) {
  if (!interrupted) {
    log(`FAILED: ${describeError(err)} (logs: ${values.keep ? logs : 'rerun with --keep to keep them'})`)
    process.stdout.write(`${JSON.stringify({ error: describeError(err) })}\n`)
  }
} finally {
  if (!interrupted) await teardown()
}
if (!interrupted) process.exit(exitCode)
