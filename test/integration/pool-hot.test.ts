/**
 * Demand on real processes: parallel downloads of one content through the
 * proxy push its egress-capped holders to their caps; the manager mirrors it
 * onto idle nodes, and once the load stops, trims it back to its base R.
 * The watcher polls the manager throughout: no chunk may ever have fewer
 * than the minimum copies.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import { cdnJson, eventually, getJson, hotLoad, poolContents, randomFile, startNetwork, tempDir, watchReplication, type Network, type ReplicationWatch } from './harness.ts'

const MB = 1e6
const BASE = 3

interface Ctx { net: Network, dir: string, watch: ReplicationWatch }
const test = suite<Ctx>('pool: hot content')

test.before(async (ctx) => {
  ctx.net = await startNetwork({
    nodes: 6,
    extra: ['--heartbeat', '500ms', '--dead-after', '3s', '--reconcile', '500ms', '--node-egress', '2MB/s', '--proxy-cache', '0']
  })
  ctx.dir = await tempDir('pool-hot')
  ctx.watch = watchReplication(ctx.net.manager, ctx.net.adminToken)
})

test.after(async (ctx) => {
  await ctx.watch?.stop()
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

test('a hot content gains copies on idle nodes, and falls back to its base count when the load stops', async (ctx) => {
  const { net, dir } = ctx
  // One chunk: its three holders are known, and the three other nodes are idle.
  const file = await randomFile(dir, 'hot.bin', MB)
  const want = createHash('sha256').update(await readFile(file)).digest('hex')
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
  const [before] = (await poolContents(net.manager, net.adminToken)).filter(c => c.id === pub.id)
  assert.is(before.copies.max, BASE)
  const holdersBefore = new Set<string>(before.copies.nodes)

  // Six viewers, each downloading the content again and again through the proxy.
  const t0 = performance.now()
  const load = hotLoad(net.proxy, pub.id, 6, want)
  let mirrored: any
  let downloads = 0
  let failures: string[] = []
  try {
    await eventually('the content has more than its base copies, on nodes that did not hold it', async () => {
      mirrored = (await poolContents(net.manager, net.adminToken)).find(c => c.id === pub.id)
      return mirrored.copies.min > BASE
    }, 60_000, 250)
  } finally {
    ({ downloads, failures } = await load.stop())
  }
  const tMirrored = performance.now()
  console.log(`mirroring: ${mirrored.copies.min} copies after ${((tMirrored - t0) / 1000).toFixed(1)} s of load (${downloads} downloads)`)
  assert.ok(mirrored.copies.nodes.some((p: string) => !holdersBefore.has(p)), 'new copies are on nodes that were idle')
  assert.equal(failures, [], 'every download was complete and byte-identical')

  await eventually('back to the base count once the load stopped', async () => {
    const c = (await poolContents(net.manager, net.adminToken)).find(x => x.id === pub.id)
    return c.copies.max === BASE && c.copies.min === BASE
  }, 60_000, 250)
  console.log(`trim: back to ${BASE} copies ${((performance.now() - tMirrored) / 1000).toFixed(1)} s after the load stopped`)

  const events = (await getJson(`${net.manager}/api/events?limit=500`, net.adminToken)).body.events as any[]
  assert.ok(events.some(e => e.kind === 'copies-added' && e.content === pub.id && e.detail?.reason === 'mirror'), 'mirror copies are in the event log')
  assert.ok(events.some(e => e.kind === 'copies-removed' && e.content === pub.id && e.detail?.reason === 'trim'), 'trims are in the event log')
  const metrics = await (await fetch(`${net.manager}/metrics`)).text()
  assert.match(metrics, /cdn_manager_actions_total\{kind="copy",reason="mirror",outcome="ok"[^}]*\} [1-9]/)
  assert.match(metrics, /cdn_manager_bytes_moved_total\{reason="mirror"[^}]*\} [1-9]/)
})

test('no chunk ever had fewer than the minimum confirmed copies', async (ctx) => {
  const seen = await ctx.watch.stop()
  assert.ok(seen.samples > 10, `the watcher sampled (${seen.samples})`)
  assert.equal(seen.violations, [])
})

test.run()
