/**
 * Downloads survive churn: viewers download a content through a real proxy
 * (its cache off, so every byte comes from the nodes) again and again while
 * holders are SIGKILLed one after another, with time for the pool to repair
 * in between. With R = 2, one healthy copy of every chunk exists at every
 * moment, so every single download must deliver the exact bytes: a holder
 * that dies mid-download, a view of the holders that predates the repair, a
 * copy that moved, none of it may fail a download or cut one short.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { createHash } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import { decodeManifest } from '../../core/manifest.ts'
import { blobFiles, cdn, copiesOnDisk, eventually, getJson, randomFile, startNetwork, tempDir, type Network, type NetworkNode } from './harness.ts'

const MiB = 1024 * 1024
const KILLS = 3
const VIEWERS = 3

interface Download { started: number, ended: number, ok: boolean, what: string }

test('repeated downloads through the proxy while holders are killed one after another: every one byte-identical', async () => {
  const net = await startNetwork({
    nodes: 5,
    extra: ['--replicas', '2', '--min-copies', '2', '--heartbeat', '500ms', '--dead-after', '2s', '--reconcile', '500ms', '--chunk-size', '256KiB', '--proxy-cache', '0']
  })
  const dir = await tempDir('chaos')
  try {
    const file = await randomFile(dir, 'chaos.bin', 4 * MiB + 12_345)
    const want = createHash('sha256').update(await readFile(file)).digest('hex')
    const pub = await cdn(['publish', file, '--manager', net.manager, '--replicas', '2', '--json'], { CDN_TOKEN: net.token })
    assert.is(pub.code, 0, pub.stderr)
    const id = JSON.parse(pub.stdout.trim().split('\n').at(-1)!).id as string
    const resolved = await getJson(`${net.manager}/api/contents/${id}`)
    const chunks = decodeManifest(Buffer.from(resolved.body.manifest, 'base64')).chunks

    const downloads: Download[] = []
    let going = true
    const viewer = async (): Promise<void> => {
      while (going) {
        const started = performance.now()
        let ok = false
        let what = ''
        try {
          const res = await fetch(`${net.proxy}/c/${id}`, { signal: AbortSignal.timeout(60_000) })
          const body = Buffer.from(await res.arrayBuffer())
          ok = res.status === 200 && createHash('sha256').update(body).digest('hex') === want
          what = `${res.status}, ${body.length} bytes${ok ? '' : `: ${body.subarray(0, 300).toString()}`}`
        } catch (err) {
          what = String(err)
        }
        downloads.push({ started, ended: performance.now(), ok, what })
      }
    }
    const viewers = Array.from({ length: VIEWERS }, viewer)

    const killed = new Set<string>()
    const windows: Array<[number, number]> = []
    try {
      for (let k = 0; k < KILLS; k++) {
        const live = net.nodes.filter(n => !killed.has(n.peerId))
        const victim = await busiestHolder(live, chunks)
        // Some downloads run on the pool as it is, before each kill.
        const before = downloads.length
        await eventually('downloads before the kill', async () => downloads.length >= before + VIEWERS, 60_000, 20)
        const t = performance.now()
        process.kill(victim.pid, 'SIGKILL')
        killed.add(victim.peerId)
        await repaired(net, net.nodes.filter(n => !killed.has(n.peerId)), id, chunks)
        windows.push([t, performance.now()])
      }
      // And some once the last repair is done.
      const before = downloads.length
      await eventually('downloads after the last repair', async () => downloads.length >= before + VIEWERS, 60_000, 20)
    } finally {
      going = false
      await Promise.all(viewers)
    }

    const failures = downloads.filter(d => !d.ok)
    console.log(`chaos: ${downloads.length} downloads, ${failures.length} failures, ${killed.size} kills (R=2, 5 nodes, proxy cache off)`)
    assert.equal(failures.map(f => f.what), [], 'every download delivered the exact bytes')
    for (const [from, to] of windows) {
      assert.ok(downloads.some(d => d.ended > from && d.started < to), 'downloads ran while a holder was dead and its copies were being repaired')
    }
  } finally {
    await net.stop()
    await rm(dir, { recursive: true, force: true })
  }
})

/** The live node holding the most chunks of the content: its loss leaves the most chunks with one copy. */
async function busiestHolder (live: NetworkNode[], chunks: string[]): Promise<NetworkNode> {
  let best: NetworkNode | undefined
  let most = 0
  for (const n of live) {
    const held = await blobFiles(n.data)
    const count = chunks.filter(c => held.has(c)).length
    if (count > most) {
      best = n
      most = count
    }
  }
  assert.ok(best, 'some live node holds the content')
  return best
}

/**
 * Repaired: every chunk has two verified copies again on live nodes the
 * manager names as holders, so the next kill leaves a copy viewers can be
 * sent to.
 */
async function repaired (net: Network, live: NetworkNode[], id: string, chunks: string[]): Promise<void> {
  await eventually('every chunk has two copies on live nodes the manager names as holders', async () => {
    const holders = new Set(((await getJson(`${net.manager}/api/contents/${id}`)).body.holders as Array<{ peerId: string }>).map(h => h.peerId))
    const disks = await copiesOnDisk(live.filter(n => holders.has(n.peerId)).map(n => n.data))
    return chunks.every(c => (disks.get(c) ?? 0) >= 2)
  }, 45_000)
}

test.run()
