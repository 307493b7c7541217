/**
 * The pool looking after itself, on real processes: a reported corrupt copy
 * is replaced, a killed node's chunks are re-copied while downloads go on,
 * a drained node ends empty and can be removed (and not before the pool can
 * spare it), and expired or deleted contents leave every disk. A watcher
 * polls the manager throughout and fails the file if any chunk ever has
 * fewer than the minimum confirmed copies.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { open, readFile, rm } from 'node:fs/promises'
import { matchesCid, parseBlobId } from '../../core/ids.ts'
import { decodeManifest } from '../../core/manifest.ts'
import {
  blobFiles, cdn, cdnJson, copiesOnDisk, eventually, getJson, poolContents, poolNodes, randomFile, sha256File, startNetwork,
  tempDir, watchReplication, type Network, type ReplicationWatch
} from './harness.ts'

const MiB = 1024 * 1024
const MIN_COPIES = 2

interface Ctx { net: Network, dir: string, watch: ReplicationWatch, files: Map<string, string>, gone: Set<string> }
const test = suite<Ctx>('pool: repair, drain, removal, expiry')

test.before(async (ctx) => {
  ctx.net = await startNetwork({
    nodes: 5,
    extra: ['--heartbeat', '500ms', '--dead-after', '2s', '--reconcile', '500ms', '--chunk-size', '256KiB', '--proxy-cache', '0', '--min-copies', String(MIN_COPIES)]
  })
  ctx.dir = await tempDir('pool-repair')
  ctx.watch = watchReplication(ctx.net.manager, ctx.net.adminToken)
  ctx.files = new Map()
  ctx.gone = new Set()
})

test.after(async (ctx) => {
  await ctx.watch?.stop()
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

async function publish (ctx: Ctx, name: string, size: number, extra: string[] = []): Promise<string> {
  const file = await randomFile(ctx.dir, name, size)
  const pub = await cdnJson(['publish', file, '--manager', ctx.net.manager, '--token-file', ctx.net.tokenFile, ...extra])
  ctx.files.set(pub.id, file)
  return pub.id
}

async function chunksOf (net: Network, id: string): Promise<string[]> {
  const r = await getJson(`${net.manager}/api/contents/${id}`)
  assert.is(r.status, 200)
  return decodeManifest(Buffer.from(r.body.manifest, 'base64')).chunks
}

function liveDirs (net: Network, except: Set<string>): string[] {
  return net.nodes.filter(n => !except.has(n.peerId)).map(n => n.data)
}

/** Fetched through the proxy (its cache is off, so every byte comes from the nodes), verified and decrypted. */
async function sameBytes (ctx: Ctx, id: string): Promise<boolean> {
  const res = await fetch(`${ctx.net.proxy}/c/${id}`, { signal: AbortSignal.timeout(60_000) })
  const body = Buffer.from(await res.arrayBuffer())
  return res.status === 200 && createHash('sha256').update(body).digest('hex') === await sha256File(ctx.files.get(id)!)
}

function since (t0: number): string {
  return `${((performance.now() - t0) / 1000).toFixed(1)} s`
}

test('a reported corrupt copy is replaced by a good one and removed', async (ctx) => {
  const { net } = ctx
  const id = await publish(ctx, 'a.bin', Math.round(1.5 * MiB))
  const [chunk] = await chunksOf(net, id)
  let victim
  for (const n of net.nodes) if ((await blobFiles(n.data)).has(chunk)) { victim = n; break }
  assert.ok(victim, 'some node holds the first chunk')
  const path = (await blobFiles(victim.data)).get(chunk)!
  // Flip bytes in place: same length, wrong hash, as a failing disk would leave it.
  const fh = await open(path, 'r+')
  await fh.write(Buffer.from('corrupt!'), 0, 8, 100)
  await fh.close()

  const t0 = performance.now()
  const res = await fetch(`${net.manager}/api/reports`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ content: id, chunk, node: victim.peerId, reason: 'hash mismatch' })
  })
  assert.is(res.status, 202)
  await res.arrayBuffer()
  // The manager fetches the accused copy and finds it really is bad before anything changes.
  await eventually('the report verified', async () => {
    const events = (await getJson(`${net.manager}/api/events?limit=50`, net.adminToken)).body.events as any[]
    return events.some(e => e.kind === 'bad-copy-verified' && e.node === victim.peerId && e.detail?.chunk === chunk && e.detail?.verdict === 'corrupt')
  }, 30_000)

  await eventually('three good copies of the chunk and the bad one gone', async () => {
    // The victim may get a fresh, verified copy back later; what must not stay is the corrupt one.
    const path = (await blobFiles(victim.data)).get(chunk)
    if (path != null && !await isGood(path, chunk)) return false
    const disks = await copiesOnDisk(net.nodes.map(n => n.data))
    const content = (await poolContents(net.manager, net.adminToken)).find(c => c.id === id)
    return (disks.get(chunk) ?? 0) >= 3 && content?.copies.min === 3
  }, 30_000)
  console.log(`bad copy replaced in ${since(t0)}`)
  const events = (await getJson(`${net.manager}/api/events?limit=200`, net.adminToken)).body.events as any[]
  assert.ok(events.some(e => e.kind === 'copies-added' && e.content === id && e.detail?.reason === 'bad-copy'), 'a copy was added for the bad one')
  assert.ok(events.some(e => e.kind === 'copies-removed' && e.content === id && e.node === victim.peerId && e.detail?.reason === 'bad-copy'), 'the bad copy was deleted')
  assert.ok(await sameBytes(ctx, id))
})

function isRunning (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function isGood (path: string, cid: string): Promise<boolean> {
  try {
    return matchesCid(parseBlobId(cid), await readFile(path))
  } catch {
    return false
  }
}

test('kill -9 of a node: its chunks are back to 3 copies on others while downloads keep working', async (ctx) => {
  const { net } = ctx
  const id = await publish(ctx, 'b.bin', 3 * MiB)
  const ids = [...ctx.files.keys()]
  const chunks = new Map<string, string[]>()
  for (const c of ids) chunks.set(c, await chunksOf(net, c))
  let victim
  for (const n of net.nodes) {
    const held = await blobFiles(n.data)
    if ((chunks.get(id) ?? []).some(c => held.has(c))) { victim = n; break }
  }
  assert.ok(victim)
  const held = [...(await blobFiles(victim.data)).keys()].filter(b => [...chunks.values()].some(list => list.includes(b)))
  assert.ok(held.length > 0)

  // Downloads through the proxy, one after another, for as long as the repair takes.
  let downloading = true
  let downloads = 0
  const failures: string[] = []
  const loader = (async () => {
    while (downloading) {
      for (const c of ids) {
        try {
          const res = await fetch(`${net.proxy}/c/${c}`, { signal: AbortSignal.timeout(30_000) })
          const body = Buffer.from(await res.arrayBuffer())
          const want = await sha256File(ctx.files.get(c)!)
          if (res.status !== 200 || createHash('sha256').update(body).digest('hex') !== want) failures.push(`${c}: ${res.status}, ${body.length} bytes`)
          downloads++
        } catch (err) {
          failures.push(`${c}: ${String(err)}`)
        }
      }
    }
  })()

  const t0 = performance.now()
  process.kill(victim.pid, 'SIGKILL')
  const dead = new Set([victim.peerId])
  await eventually('the killed node is declared dead', async () => (await poolNodes(net.manager, net.adminToken)).find(n => n.peerId === victim.peerId)?.state === 'dead', 30_000)
  const tDead = performance.now()
  await eventually('every chunk the node held has 3 copies on other nodes', async () => {
    const disks = await copiesOnDisk(liveDirs(net, dead))
    if (!held.every(b => (disks.get(b) ?? 0) >= 3)) return false
    const contents = await poolContents(net.manager, net.adminToken)
    return ids.every(c => contents.find(x => x.id === c)?.copies.min >= 3)
  }, 60_000)
  console.log(`node loss: dead after ${((tDead - t0) / 1000).toFixed(1)} s, repaired ${since(tDead)} later (${held.length} blobs)`)
  // A couple more downloads once repaired, then stop.
  const before = downloads
  await eventually('downloads after the repair', async () => downloads >= before + ids.length, 60_000)
  downloading = false
  await loader
  assert.equal(failures, [], 'every download during the repair was complete and byte-identical')
  assert.ok(downloads >= ids.length)
  ctx.gone.add(victim.peerId)
})

test('a node that holds copies the pool needs cannot be removed', async (ctx) => {
  const { net } = ctx
  // Two copies (the minimum): neither holder can go before its copies are elsewhere.
  const id = await publish(ctx, 'c.bin', MiB, ['--replicas', '2'])
  const [chunk] = await chunksOf(net, id)
  let holder
  for (const n of net.nodes) if (!ctx.gone.has(n.peerId) && (await blobFiles(n.data)).has(chunk)) { holder = n; break }
  assert.ok(holder)
  const r = await cdn(['node', 'rm', holder.peerId, '--manager', net.manager, '--token-file', net.adminTokenFile])
  assert.is.not(r.code, 0)
  assert.match(r.stderr, /drain it first/)
  assert.ok((await poolNodes(net.manager, net.adminToken)).some(n => n.peerId === holder.peerId), 'still in the pool')
})

test('a drained node ends empty, every content stays byte-identical, and it can then be removed for good', async (ctx) => {
  const { net } = ctx
  const nodes = await poolNodes(net.manager, net.adminToken)
  // The live node holding the most: the drain has the most to move.
  const candidates = nodes.filter(n => n.state === 'alive').sort((a, b) => b.copies - a.copies)
  const target = net.nodes.find(n => n.peerId === candidates[0].peerId)!
  assert.ok((await blobFiles(target.data)).size > 0, 'the node holds data before the drain')

  const t0 = performance.now()
  const drained = await cdnJson(['node', 'drain', target.peerId, '--manager', net.manager, '--token-file', net.adminTokenFile])
  assert.is(drained.drained, true)
  assert.is(drained.copies, 0)
  await eventually('nothing left on the drained node\'s disk', async () => (await blobFiles(target.data)).size === 0, 30_000)
  console.log(`drain of ${candidates[0].copies} copies took ${since(t0)}`)
  const status = await cdnJson(['status', '--manager', net.manager, '--token-file', net.adminTokenFile])
  const row = status.nodes.find((n: any) => n.peerId === target.peerId)
  assert.is(row.state, 'draining')
  assert.is(row.health, 'drained')

  for (const id of ctx.files.keys()) assert.ok(await sameBytes(ctx, id), `content ${id} byte-identical after the drain`)

  const rm1 = await cdnJson(['node', 'rm', target.peerId, '--manager', net.manager, '--token-file', net.adminTokenFile])
  assert.is(rm1.removed, true)
  // The killed node's chunks were repaired: it can go too, dead as it is (by its short name, as cdn status shows it).
  const dead = [...ctx.gone][0]
  const rm2 = await cdnJson(['node', 'rm', `${dead.slice(0, 8)}…${dead.slice(-6)}`, '--manager', net.manager, '--token-file', net.adminTokenFile])
  assert.is(rm2.peerId, dead)
  ctx.gone.add(target.peerId)
  // The removed node is told: it stops, wipes what it had and exits.
  await eventually('the removed node process exited', async () => !isRunning(target.pid), 30_000)
  assert.is((await blobFiles(target.data)).size, 0)
  const left = (await poolNodes(net.manager, net.adminToken)).map(n => n.peerId)
  assert.not.ok(left.includes(target.peerId))
  assert.not.ok(left.includes(dead))
})

test('an expired content and a deleted content leave every disk', async (ctx) => {
  const { net } = ctx
  const expiring = await publish(ctx, 'd.bin', MiB, ['--ttl', '2s'])
  const deleted = [...ctx.files.keys()][0]
  const blobs = [...await chunksOf(net, expiring), expiring, ...await chunksOf(net, deleted), deleted]
  const t0 = performance.now()
  const rm = await cdnJson(['rm', deleted, '--manager', net.manager, '--token-file', net.tokenFile])
  assert.is(rm.deleted, true)
  await eventually('both contents are gone from the listing and from every disk', async () => {
    const listed = (await poolContents(net.manager, net.adminToken)).map(c => c.id)
    if (listed.includes(expiring) || listed.includes(deleted)) return false
    // The killed node's disk is out of reach (it is not running): the running nodes' disks must be clean.
    for (const data of liveDirs(net, ctx.gone)) {
      const files = await blobFiles(data)
      if (blobs.some(b => files.has(b))) return false
    }
    return true
  }, 30_000)
  console.log(`expiry (ttl 2 s) and delete done ${since(t0)} after publishing`)
  const events = (await getJson(`${net.manager}/api/events?limit=50`, net.adminToken)).body.events as any[]
  assert.ok(events.some(e => e.kind === 'content-expired' && e.content === expiring))
  assert.is((await getJson(`${net.manager}/api/contents/${expiring}`)).status, 404)
})

test('no chunk ever had fewer than the minimum confirmed copies', async (ctx) => {
  const seen = await ctx.watch.stop()
  assert.ok(seen.samples > 10, `the watcher sampled (${seen.samples})`)
  assert.equal(seen.violations, [])
  assert.ok(seen.lowest == null || seen.lowest >= MIN_COPIES)
})

test.run()
