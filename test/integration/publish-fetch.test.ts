/**
 * The whole path across real processes: `cdn up` with 4 nodes, then publish,
 * get, failures and deletion through the `cdn` command as users run it.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { createServer } from 'node:http'
import { open, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'node:http'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { createHost } from '../../core/host.ts'
import { rpcCall } from '../../core/control-rpc.ts'
import { CONTROL_PROTOCOL } from '../../core/wire.ts'
import { chunkCid } from '../../core/ids.ts'
import { decodeManifest } from '../../core/manifest.ts'
import { blobFiles, cdn, cdnJson, eventually, getJson, randomFile, sha256File, startNetwork, tempDir, type Network } from './harness.ts'

const MiB = 1024 * 1024
const test = suite<{ net: Network, dir: string }>('publish and fetch')

test.before(async (ctx) => {
  ctx.net = await startNetwork({ nodes: 4 })
  ctx.dir = await tempDir('files')
})

test.after(async (ctx) => {
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

async function allBlobs (net: Network): Promise<number> {
  let n = 0
  for (const node of net.nodes) n += (await blobFiles(node.data)).size
  return n
}

async function resolve (net: Network, id: string): Promise<{ chunks: string[], holders: any[] }> {
  const r = await getJson(`${net.manager}/api/contents/${id}`)
  assert.is(r.status, 200)
  return { chunks: decodeManifest(Buffer.from(r.body.manifest, 'base64')).chunks, holders: r.body.holders }
}

test('a 50 MiB file comes back byte-identical, with every chunk on 3 nodes', async ({ net, dir }) => {
  const file = await randomFile(dir, 'big.bin', 50 * MiB + 12345)
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile, '--proxy', net.proxy])
  assert.match(pub.id, /^bagaaiera/)
  assert.is(pub.url, `${net.proxy}/c/${pub.id}`)
  const out = join(dir, 'big.out')
  await cdnJson(['get', pub.id, '-o', out, '--manager', net.manager])
  assert.is(await sha256File(out), await sha256File(file))

  const ls = await cdnJson(['ls', '--manager', net.manager, '--token-file', net.adminTokenFile])
  const entry = ls.contents.find((c: any) => c.id === pub.id)
  assert.ok(entry, 'published content is listed')
  assert.is(entry.size, 50 * MiB + 12345)
  assert.is(entry.copies.min, 3)
  assert.is(entry.copies.max, 3)

  // The copies the catalog claims are really on the nodes' disks.
  const { chunks } = await resolve(net, pub.id)
  const onDisk = new Map<string, number>()
  for (const node of net.nodes) for (const name of (await blobFiles(node.data)).keys()) onDisk.set(name, (onDisk.get(name) ?? 0) + 1)
  for (const c of chunks) assert.is(onDisk.get(c), 3, `chunk ${c} on 3 disks`)
})

test('publishing without or with a wrong token is refused with 401 and stores nothing', async ({ net, dir }) => {
  const file = await randomFile(dir, 'small.bin', 3 * MiB)
  const before = await allBlobs(net)
  const wrong = await cdn(['publish', file, '--manager', net.manager], { CDN_TOKEN: 'not-the-token' })
  assert.is.not(wrong.code, 0)
  assert.match(wrong.stderr, /token/i)
  assert.is(wrong.stderr.trim().split('\n').length, 1, 'one-line message')
  for (const headers of [{}, { authorization: 'Bearer nope' }] as Array<Record<string, string>>) {
    const res = await fetch(`${net.manager}/api/publish`, { method: 'POST', headers, body: Buffer.alloc(1000) })
    assert.is(res.status, 401)
    assert.ok(((await res.json()) as any).error.message)
  }
  assert.is(await allBlobs(net), before)
})

test('a truncated upload publishes nothing and its stored chunks are removed', async ({ net }) => {
  const before = await allBlobs(net)
  const listed = (await cdnJson(['ls', '--manager', net.manager, '--token-file', net.adminTokenFile])).contents.length
  const url = new URL('/api/publish', net.manager)
  await new Promise<void>((resolve) => {
    const req = request(url, { method: 'POST', headers: { authorization: `Bearer ${net.token}`, 'content-length': String(20 * MiB), 'x-cdn-name': 'cut.bin' } })
    req.on('error', () => { resolve() })
    req.on('response', (res) => { res.resume(); res.on('end', resolve) })
    // Send 6 MiB of the promised 20, give the manager time to store some chunks, then cut the connection.
    req.write(Buffer.alloc(6 * MiB, 7), () => { setTimeout(() => { req.destroy(); resolve() }, 1500) })
  })
  await eventually('blobs of the cut upload removed', async () => await allBlobs(net) === before)
  assert.is((await cdnJson(['ls', '--manager', net.manager, '--token-file', net.adminTokenFile])).contents.length, listed)
})

test('a node refuses a store order from a peer that is not its manager', async ({ net }) => {
  let fetched = 0
  const blob = Buffer.from('an order from a stranger')
  const cid = chunkCid(blob).toString()
  const source = createServer((_req, res) => { fetched++; res.end(blob) })
  await new Promise<void>(resolve => source.listen(0, '127.0.0.1', resolve))
  const port = (source.address() as any).port
  const stranger = await createHost({ privateKey: await generateKeyPair('Ed25519'), dhtServer: false })
  try {
    const target = net.nodes[1]
    await stranger.dial(peerIdFromString(target.peerId), { signal: AbortSignal.timeout(10_000) }).catch(async () => {
      const { multiaddr } = await import('@multiformats/multiaddr')
      await stranger.dial(multiaddr(target.multiaddrs[0]))
    })
    const reply: any = await rpcCall(stranger, peerIdFromString(target.peerId), CONTROL_PROTOCOL,
      { type: 'store', blobs: [{ cid, sources: [`http://127.0.0.1:${port}/x`] }], contents: [] }, { timeout: 10_000 })
    assert.is(reply.type, 'error')
    assert.is(reply.code, 'ERR_FORBIDDEN')
    assert.is(fetched, 0, 'the node fetched nothing for the stranger')
    assert.not.ok((await blobFiles(target.data)).has(cid))
  } finally {
    await stranger.stop()
    source.close()
  }
})

test('a corrupted blob on one node is detected and the chunk is fetched from another', async ({ net, dir }) => {
  const file = await randomFile(dir, 'corrupt.bin', 6 * MiB)
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
  const { chunks } = await resolve(net, pub.id)
  // Corrupt every copy held by the first node that has any chunk of it, so the fetch must meet one.
  let corrupted = 0
  for (const node of net.nodes) {
    const files = await blobFiles(node.data)
    for (const c of chunks) {
      const path = files.get(c)
      if (path == null) continue
      const fh = await open(path, 'r+')
      await fh.write(Buffer.from('garbage!'), 0, 8, 100)
      await fh.close()
      corrupted++
    }
    if (corrupted > 0) break
  }
  assert.ok(corrupted > 0)
  const out = join(dir, 'corrupt.out')
  await cdnJson(['get', pub.id, '-o', out, '--manager', net.manager])
  assert.is(await sha256File(out), await sha256File(file))
  await eventually('the bad copy is reported to the manager', async () => {
    const ev = await getJson(`${net.manager}/api/events?limit=200`, net.adminToken)
    return ev.body.events.some((e: any) => e.kind === 'bad-copy-verified' && e.content === pub.id)
  }, 10_000)
})

test('cdn rm removes every copy from every node and the content from the list', async ({ net, dir }) => {
  const file = await randomFile(dir, 'rm.bin', 4 * MiB)
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
  const { chunks } = await resolve(net, pub.id)
  const rmRes = await cdn(['rm', pub.id, '--manager', net.manager, '--token-file', net.tokenFile])
  assert.is(rmRes.code, 0, rmRes.stderr)
  for (const node of net.nodes) {
    const files = await blobFiles(node.data)
    for (const c of [...chunks, pub.id]) assert.not.ok(files.has(c), `${c} still on ${node.peerId}`)
  }
  const ls = await cdnJson(['ls', '--manager', net.manager, '--token-file', net.adminTokenFile])
  assert.not.ok(ls.contents.some((c: any) => c.id === pub.id))
  const again = await cdn(['get', pub.id, '-o', join(dir, 'gone.out'), '--manager', net.manager])
  assert.is.not(again.code, 0)
  assert.match(again.stderr, /no content|not found|unknown/i)
})

test('bad input gets a one-line error and a non-zero exit', async ({ net, dir }) => {
  const cases = [
    await cdn(['publish', join(dir, 'no-such-file'), '--manager', net.manager, '--token-file', net.tokenFile]),
    await cdn(['get', 'not-a-cid', '-o', join(dir, 'x'), '--manager', net.manager]),
    await cdn(['ls', '--manager', 'http://127.0.0.1:9']),
    await cdn(['rm', 'bagaaierajp2relzuivkmko66f25yzuvx4piwacwwghbyljoxztrdy54fiwna', '--manager', net.manager], { CDN_TOKEN: 'wrong' })
  ]
  for (const r of cases) {
    assert.is.not(r.code, 0)
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.match(r.stderr, /^cdn: /)
  }
})

test.run()
