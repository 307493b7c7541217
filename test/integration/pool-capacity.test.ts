/**
 * A full-ish pool on real processes: three small nodes filled above their
 * disk high-water mark have nowhere to shed to; an operator adds a node with
 * `cdn node start`, and it receives copies until the others are back under
 * the mark, without anyone moving data by hand. The watcher polls the
 * manager throughout: no chunk may ever have fewer than the minimum copies.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import {
  blobFiles, cdnJson, copiesOnDisk, eventually, getJson, poolContents, poolNodes, randomFile, sha256File, startNetwork,
  startNodeProcess, tempDir, watchReplication, type Network, type ReplicationWatch, type StartedNode
} from './harness.ts'

const MiB = 1024 * 1024
const CAPACITY = 12e6
/** DEFAULT_POLICY.diskHighWater */
const HIGH_WATER = 0.9

interface Ctx { net: Network, dir: string, watch: ReplicationWatch, extra?: StartedNode }
const test = suite<Ctx>('pool: high-water and join')

test.before(async (ctx) => {
  ctx.net = await startNetwork({
    nodes: 3,
    extra: ['--heartbeat', '500ms', '--dead-after', '3s', '--reconcile', '500ms', '--node-capacity', String(CAPACITY), '--proxy-cache', '0']
  })
  ctx.dir = await tempDir('pool-capacity')
  ctx.watch = watchReplication(ctx.net.manager, ctx.net.adminToken)
})

test.after(async (ctx) => {
  await ctx.watch?.stop()
  await ctx.extra?.stop()
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

test('nodes above the disk high-water mark shed onto a node that joins, and the content stays whole', async (ctx) => {
  const { net, dir } = ctx
  // 10.5 MiB with R = 3 on three 12 MB nodes: every node holds every chunk, about 92% full.
  const file = await randomFile(dir, 'full.bin', Math.round(10.5 * MiB))
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
  await eventually('every node reports itself above the high-water mark', async () => {
    const nodes = await poolNodes(net.manager, net.adminToken)
    return nodes.length === 3 && nodes.every(n => n.used > HIGH_WATER * n.capacity && n.health === 'disk-high')
  }, 30_000)

  const t0 = performance.now()
  ctx.extra = await startNodeProcess(net, { capacity: String(CAPACITY), label: 'joiner' })
  const joiner = ctx.extra
  await eventually('the full nodes are back under the high-water mark, the new node holding what they shed', async () => {
    const nodes = await poolNodes(net.manager, net.adminToken)
    const others = nodes.filter(n => n.peerId !== joiner.peerId)
    const fresh = nodes.find(n => n.peerId === joiner.peerId)
    return fresh != null && fresh.copies > 0 && others.every(n => n.used <= HIGH_WATER * n.capacity)
  }, 60_000)
  console.log(`join + high-water shedding took ${((performance.now() - t0) / 1000).toFixed(1)} s`)

  const onJoiner = await blobFiles(joiner.data)
  assert.ok(onJoiner.size > 1, 'the new node received copies (and the manifest) on its disk')
  assert.ok(onJoiner.has(pub.id), 'it holds the manifest, so it indexes and provides the content')
  const have = await getJson(`${joiner.http}/have/${pub.id}`)
  assert.is(have.status, 200, 'the new node serves the content\'s have-bitmap')

  const content = (await poolContents(net.manager, net.adminToken)).find(c => c.id === pub.id)
  assert.is(content.copies.min, 3, 'every chunk still has its 3 copies')
  const disks = await copiesOnDisk([...net.nodes.map(n => n.data), joiner.data])
  const manifest = (await getJson(`${net.manager}/api/contents/${pub.id}`)).body
  const { decodeManifest } = await import('../../core/manifest.ts')
  for (const c of decodeManifest(Buffer.from(manifest.manifest, 'base64')).chunks) assert.ok((disks.get(c) ?? 0) >= 3, `chunk ${c} on 3 disks`)
  const events = (await getJson(`${net.manager}/api/events?limit=200`, net.adminToken)).body.events as any[]
  assert.ok(events.some(e => e.kind === 'copies-added' && e.node === joiner.peerId && e.detail?.reason === 'migrate'))
  assert.ok(events.some(e => e.kind === 'copies-removed' && e.detail?.reason === 'migrate'))

  const out = join(dir, 'full.out')
  await cdnJson(['get', pub.id, '-o', out, '--manager', net.manager])
  assert.is(await sha256File(out), await sha256File(file))
})

test('no chunk ever had fewer than the minimum confirmed copies', async (ctx) => {
  const seen = await ctx.watch.stop()
  assert.ok(seen.samples > 10, `the watcher sampled (${seen.samples})`)
  assert.equal(seen.violations, [])
})

test.run()
