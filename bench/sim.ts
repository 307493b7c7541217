/**
 * The replication controller at scale: the very policy module the manager
 * runs (manager/replication-policy.ts), driven once per simulated minute
 * against a simulated pool with Zipf demand, a flash crowd and churn.
 * Prints one JSON line per minute and a summary line; writes both to
 * bench/results/sim.json.
 *
 *   node bench/sim.ts [--nodes 10000] [--contents 100000] [--minutes 60] [--seed 1]
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { create as createDigest } from 'multiformats/hashes/digest'
import { DEFAULT_POLICY, reconcile, type PolicyContent, type PolicyNode, type PolicySettings } from '../manager/replication/replication-policy.ts'
import { seededRandom } from './seeded-random.ts'

const { values: args } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10000' },
    contents: { type: 'string', default: '100000' },
    minutes: { type: 'string', default: '60' },
    seed: { type: 'string', default: '1' },
    quiet: { type: 'boolean', default: false }
  }
})

const NODES = Number(args.nodes)
const CONTENTS = Number(args.contents)
const MINUTES = Number(args.minutes)
const BASE = 3
const CHUNK = 64 * 1024 * 1024 // a simulated chunk stands for 64 MiB of real ones
const TB = 1e12
const MB = 1e6

const rand = seededRandom(Number(args.seed))
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]

function key (label: string): Uint8Array {
  return createHash('sha256').update(label).digest()
}

function fakeCid (label: string): string {
  return CID.createV1(0x55, createDigest(0x12, key(label))).toString()
}

let nextNode = 0
function newNode (): PolicyNode {
  const id = `node-${nextNode++}`
  return {
    peerId: id,
    state: 'alive',
    zone: `z${Math.floor(rand() * 20)}`,
    capacity: pick([4, 8, 16, 32]) * TB,
    used: 0,
    egressCap: pick([25, 50, 100, 200]) * MB,
    egressRate: 0,
    kadKey: key(id)
  }
}

const nodes: PolicyNode[] = Array.from({ length: NODES }, newNode)
const nodeById = new Map(nodes.map(n => [n.peerId, n]))

// Zipf(1) popularity; the total is set so that the pool runs at about a third of its egress.
const totalEgress = nodes.reduce((s, n) => s + n.egressCap, 0)
const harmonic = Array.from({ length: CONTENTS }, (_, i) => 1 / (i + 1)).reduce((a, b) => a + b, 0)
const baseDemand = (rank: number): number => 0.35 * totalEgress * (1 / (rank + 1)) / harmonic

const contents: PolicyContent[] = []
for (let i = 0; i < CONTENTS; i++) {
  const chunks = 1 + Math.floor(rand() * 4)
  contents.push({
    id: `content-${i}`,
    base: BASE,
    demand: baseDemand(i),
    chunks: Array.from({ length: chunks }, (_, k) => {
      const holders = new Set<string>()
      while (holders.size < BASE) holders.add(nodes[Math.floor(rand() * nodes.length)].peerId)
      for (const h of holders) nodeById.get(h)!.used += CHUNK
      return { cid: fakeCid(`c${i}/${k}`), size: CHUNK, holders: [...holders] }
    })
  })
}

const FLASH_AT = Math.floor(MINUTES / 3)
const FLASH_FOR = Math.max(5, Math.floor(MINUTES / 4))
const flash = Array.from({ length: 5 }, () => contents[1000 + Math.floor(rand() * (CONTENTS - 1000))])
const FAIL_PER_MINUTE = Math.max(1, Math.round(NODES * 0.0005))

const settings: PolicySettings = {
  ...DEFAULT_POLICY,
  minCopies: 2,
  maxCopies: 256,
  // The pool spends at most 5% of its egress on its own moves.
  moveBudget: 0.05 * totalEgress * 60,
  placementSample: 256
}

interface Failure { at: number, chunks: Set<string>, repairedAt?: number }
const failures: Failure[] = []
const totals = { demand: 0, served: 0, mirrorBytes: 0, repairBytes: 0, migrateBytes: 0, drainBytes: 0, underReplicatedChunkMinutes: 0, actions: 0 }
const lines: unknown[] = []
const started = performance.now()

function healthyHolders (holders: string[]): string[] {
  return holders.filter(h => nodeById.get(h)?.state === 'alive')
}

/** Routes each content's demand to its live holders, evenly; a node serves up to its cap. */
function serveMinute (): { demand: number, served: number } {
  const load = new Map<string, number>()
  let demand = 0
  for (const c of contents) {
    demand += c.demand
    const perChunk = c.demand / c.chunks.length
    for (const ch of c.chunks) {
      const hs = healthyHolders(ch.holders)
      for (const h of hs) load.set(h, (load.get(h) ?? 0) + perChunk / hs.length)
    }
  }
  let served = 0
  for (const n of nodes) {
    const l = load.get(n.peerId) ?? 0
    n.egressRate = n.state === 'alive' ? Math.min(l, n.egressCap) : 0
    served += n.egressRate
  }
  return { demand, served }
}

function churn (minute: number): void {
  for (let i = 0; i < FAIL_PER_MINUTE; i++) {
    const victim = pick(nodes)
    if (victim.state !== 'alive') continue
    victim.state = 'dead'
    const lost = new Set<string>()
    for (const c of contents) for (const ch of c.chunks) if (ch.holders.includes(victim.peerId)) lost.add(ch.cid)
    failures.push({ at: minute, chunks: lost })
    const fresh = newNode()
    nodes.push(fresh)
    nodeById.set(fresh.peerId, fresh)
  }
}

function applyActions (actions: ReturnType<typeof reconcile>['actions']): void {
  const chunkOf = new Map<string, PolicyContent['chunks'][number]>()
  for (const a of actions) if (a.kind !== 'expire') chunkOf.set(a.cid, undefined as any)
  for (const c of contents) for (const ch of c.chunks) if (chunkOf.has(ch.cid)) chunkOf.set(ch.cid, ch)
  for (const a of actions) {
    if (a.kind === 'expire') continue
    const ch = chunkOf.get(a.cid)!
    if (a.kind === 'copy') {
      ch.holders.push(a.to)
      nodeById.get(a.to)!.used += a.size
      if (a.reason === 'mirror') totals.mirrorBytes += a.size
      else if (a.reason === 'migrate') totals.migrateBytes += a.size
      else if (a.reason === 'drain') totals.drainBytes += a.size
      else totals.repairBytes += a.size
    } else {
      ch.holders = ch.holders.filter(h => h !== a.node)
      nodeById.get(a.node)!.used -= ch.size
    }
  }
}

function checkRepairs (minute: number): void {
  const base = new Map<string, number>()
  for (const c of contents) for (const ch of c.chunks) base.set(ch.cid, healthyHolders(ch.holders).length)
  for (const f of failures) {
    if (f.repairedAt != null) continue
    if ([...f.chunks].every(cid => (base.get(cid) ?? BASE) >= BASE)) f.repairedAt = minute
  }
}

for (let minute = 1; minute <= MINUTES; minute++) {
  const t0 = performance.now()
  for (const f of flash) f.demand = minute >= FLASH_AT && minute < FLASH_AT + FLASH_FOR ? 0.01 * totalEgress : baseDemand(1000)
  churn(minute)
  const { demand, served } = serveMinute()
  const report = reconcile({ nodes, contents, settings, now: minute * 60_000 })
  applyActions(report.actions)
  checkRepairs(minute)
  totals.demand += demand
  totals.served += served
  totals.underReplicatedChunkMinutes += report.underReplicated
  totals.actions += report.actions.length
  const copiesOfFlash = flash.map(c => Math.min(...c.chunks.map(ch => healthyHolders(ch.holders).length)))
  const line = {
    bench: 'sim',
    minute,
    servedShare: Number((served / demand).toFixed(4)),
    actions: report.actions.length,
    copies: report.actions.filter(a => a.kind === 'copy').length,
    deletes: report.actions.filter(a => a.kind === 'delete').length,
    deferred: report.deferred,
    underReplicated: report.underReplicated,
    flashCopies: copiesOfFlash,
    reconcileMs: Math.round(performance.now() - t0)
  }
  lines.push(line)
  if (args.quiet !== true) process.stdout.write(`${JSON.stringify(line)}\n`)
}

const perContent = contents.map(c => Math.min(...c.chunks.map(ch => healthyHolders(ch.holders).length)))
const repaired = failures.filter(f => f.repairedAt != null).map(f => f.repairedAt! - f.at)
const summary = {
  bench: 'sim',
  system: 'ours',
  nodes: NODES,
  contents: CONTENTS,
  minutes: MINUTES,
  failures: failures.length,
  servedWithinCaps: Number((totals.served / totals.demand).toFixed(4)),
  copiesPerContent: { mean: Number((perContent.reduce((a, b) => a + b, 0) / perContent.length).toFixed(3)), max: Math.max(...perContent), base: BASE },
  bytesMoved: { mirror: totals.mirrorBytes, repair: totals.repairBytes, migrate: totals.migrateBytes, drain: totals.drainBytes },
  repairMinutes: { median: repaired.sort((a, b) => a - b)[Math.floor(repaired.length / 2)] ?? null, max: repaired.length > 0 ? Math.max(...repaired) : null, unrepaired: failures.length - repaired.length },
  underReplicatedChunkMinutes: totals.underReplicatedChunkMinutes,
  wallSeconds: Number(((performance.now() - started) / 1000).toFixed(1))
}
process.stdout.write(`${JSON.stringify(summary)}\n`)
await mkdir(join(import.meta.dirname, 'results'), { recursive: true })
await writeFile(join(import.meta.dirname, 'results', 'sim.json'), JSON.stringify({ summary, minutes: lines }, null, 1))
