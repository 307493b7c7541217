import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BandwidthLimiter } from '../../../core/bandwidth-limiter.ts'
import { encryptChunk, newContentKey } from '../../../core/chunk-crypto.ts'
import { chunkCid } from '../../../core/ids.ts'
import { silentLogger } from '../../../core/log.ts'
import { sealMetadata, signManifest } from '../../../core/manifest.ts'
import { createMetricsRegistry } from '../../../core/metrics.ts'
import { BlobStore } from '../../../node/blob-store.ts'
import { ContentIndex } from '../../../node/content-index.ts'
import { DataPlane, type DataPlaneInit } from '../../../node/data-plane.ts'
import { LoadMeter } from '../../../node/load-meter.ts'
import { createNodeMetrics } from '../../../node/node-metrics.ts'

const logger = silentLogger()
const CHUNK = 100_000

interface Fixture {
  dir: string
  plane: DataPlane
  url: string
  meter: LoadMeter
  contentId: string
  chunks: Uint8Array[]
  chunkIds: string[]
  bigId?: string
}

/** A content of 3 chunks of which the node holds chunks 0 and 2 and the manifest; `big` adds a blob of that many bytes. */
async function setup (maxEgress = Infinity, opts: { big?: number, init?: Partial<DataPlaneInit> } = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-data-plane-'))
  const store = await BlobStore.open({ dir, capacity: 1 << 26, logger })
  const key = newContentKey()
  const plain = new Uint8Array(CHUNK * 3 - 5).map((_, i) => i % 253)
  const chunks = [0, 1, 2].map(i => encryptChunk(key, i, plain.subarray(i * CHUNK, (i + 1) * CHUNK)))
  const chunkIds = chunks.map(c => chunkCid(c).toString())
  const signer = await generateKeyPair('Ed25519')
  const signed = await signManifest({
    size: plain.length,
    chunkSize: CHUNK,
    chunks: chunkIds,
    createdAt: new Date().toISOString(),
    publisher: 'test',
    meta: sealMetadata(key, { name: 'x.bin', type: 'application/octet-stream' })
  }, signer, peerIdFromPrivateKey(signer).toString())
  await store.put(signed.id, signed.bytes)
  await store.put(chunkCid(chunks[0]), chunks[0])
  await store.put(chunkCid(chunks[2]), chunks[2])
  let bigId: string | undefined
  if (opts.big != null) {
    const big = randomBytes(opts.big)
    bigId = chunkCid(big).toString()
    await store.put(chunkCid(big), big)
  }
  const index = new ContentIndex({ store, logger })
  await index.load()
  const registry = createMetricsRegistry('node')
  const meter = new LoadMeter()
  const plane = new DataPlane({
    store,
    index,
    limiter: new BandwidthLimiter(maxEgress),
    meter,
    metrics: createNodeMetrics(registry, store),
    registry,
    health: () => ({ peerId: 'test', used: store.used, capacity: store.capacity, blobs: store.count, contents: index.size }),
    logger
  }, { host: '127.0.0.1', port: 0, ...opts.init })
  const url = await plane.start()
  return { dir, plane, url, meter, contentId: signed.id.toString(), chunks, chunkIds, bigId }
}

async function teardown (f: Fixture): Promise<void> {
  await f.plane.stop()
  await rm(f.dir, { recursive: true, force: true })
}

async function errorCode (res: Response): Promise<string> {
  const body = await res.json() as { error: { code: string, message: string } }
  assert.type(body.error.message, 'string')
  return body.error.code
}

test('GET /chunk answers the blob bytes with immutable caching headers', async () => {
  const f = await setup()
  try {
    const res = await fetch(`${f.url}/chunk/${f.chunkIds[0]}`)
    assert.is(res.status, 200)
    assert.is(res.headers.get('content-type'), 'application/octet-stream')
    assert.is(res.headers.get('content-length'), String(f.chunks[0].length))
    assert.is(res.headers.get('etag'), `"${f.chunkIds[0]}"`)
    assert.is(res.headers.get('cache-control'), 'public, max-age=31536000, immutable')
    assert.equal(Buffer.from(await res.arrayBuffer()), Buffer.from(f.chunks[0]))

    const report = f.meter.read()
    assert.is(report.contents[f.contentId]?.requests > 0, true)
    assert.is(report.egressRate > 0, true)
  } finally {
    await teardown(f)
  }
})

test('HEAD /chunk answers the same headers and no body', async () => {
  const f = await setup()
  try {
    const res = await fetch(`${f.url}/chunk/${f.chunkIds[2]}`, { method: 'HEAD' })
    assert.is(res.status, 200)
    assert.is(res.headers.get('content-length'), String(f.chunks[2].length))
    assert.is(res.headers.get('etag'), `"${f.chunkIds[2]}"`)
    assert.is(res.headers.get('cache-control'), 'public, max-age=31536000, immutable')
    assert.is((await res.arrayBuffer()).byteLength, 0)
  } finally {
    await teardown(f)
  }
})

test('If-None-Match with the etag answers 304', async () => {
  const f = await setup()
  try {
    const res = await fetch(`${f.url}/chunk/${f.chunkIds[0]}`, { headers: { 'if-none-match': `"other", "${f.chunkIds[0]}"` } })
    assert.is(res.status, 304)
    assert.is(res.headers.get('etag'), `"${f.chunkIds[0]}"`)
    const other = await fetch(`${f.url}/chunk/${f.chunkIds[0]}`, { headers: { 'if-none-match': '"something-else"' } })
    assert.is(other.status, 200)
    await other.arrayBuffer()
  } finally {
    await teardown(f)
  }
})

test('malformed ids are 400, absent blobs and unknown paths 404, other methods 405', async () => {
  const f = await setup()
  try {
    for (const bad of ['not-a-cid', 'QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG', 'bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy']) {
      const res = await fetch(`${f.url}/chunk/${bad}`)
      assert.is(res.status, 400, bad)
      assert.is(await errorCode(res), 'ERR_BAD_INPUT')
    }
    const absent = await fetch(`${f.url}/chunk/${f.chunkIds[1]}`)
    assert.is(absent.status, 404)
    assert.is(await errorCode(absent), 'ERR_NOT_FOUND')
    const unknown = await fetch(`${f.url}/nothing/here`)
    assert.is(unknown.status, 404)
    assert.is(await errorCode(unknown), 'ERR_NOT_FOUND')
    const post = await fetch(`${f.url}/chunk/${f.chunkIds[0]}`, { method: 'POST', body: 'x' })
    assert.is(post.status, 405)
    assert.is(post.headers.get('allow'), 'GET, HEAD')
    await post.arrayBuffer()
  } finally {
    await teardown(f)
  }
})

test('the have-bitmap marks exactly the held chunks of a partly held content', async () => {
  const f = await setup()
  try {
    const res = await fetch(`${f.url}/have/${f.contentId}`)
    assert.is(res.status, 200)
    const body = await res.json() as { content: string, chunks: number, bitmap: string }
    assert.is(body.content, f.contentId)
    assert.is(body.chunks, 3)
    // chunks 0 and 2 held: bits 0x80 and 0x20
    assert.equal([...Buffer.from(body.bitmap, 'base64')], [0xa0])

    const chunkAsContent = await fetch(`${f.url}/have/${f.chunkIds[0]}`)
    assert.is(chunkAsContent.status, 400)
    await chunkAsContent.arrayBuffer()
    const other = await signManifestlessId()
    const absent = await fetch(`${f.url}/have/${other}`)
    assert.is(absent.status, 404)
    await absent.arrayBuffer()
  } finally {
    await teardown(f)
  }
})

test('health and metrics report the store', async () => {
  const f = await setup()
  try {
    const health = await (await fetch(`${f.url}/health`)).json() as Record<string, unknown>
    assert.is(health.ok, true)
    assert.is(health.blobs, 3)
    assert.is(health.contents, 1)
    await (await fetch(`${f.url}/chunk/${f.chunkIds[0]}`)).arrayBuffer()
    const text = await (await fetch(`${f.url}/metrics`)).text()
    assert.match(text, /cdn_node_blobs\{role="node"\} 3/)
    assert.match(text, new RegExp(`cdn_node_served_bytes_total\\{route="chunk",role="node"\\} ${f.chunks[0].length}`))
  } finally {
    await teardown(f)
  }
})

test('with an egress cap the whole blob still arrives, and a client that leaves does not hurt the server', async () => {
  // 400 KB/s with a 64 KiB burst: a 100 KB chunk takes a few pieces, each paid for.
  const f = await setup(400_000)
  try {
    const res = await fetch(`${f.url}/chunk/${f.chunkIds[2]}`)
    assert.equal(Buffer.from(await res.arrayBuffer()), Buffer.from(f.chunks[2]))

    const ac = new AbortController()
    const cut = await fetch(`${f.url}/chunk/${f.chunkIds[0]}`, { signal: ac.signal })
    const reader = cut.body?.getReader()
    await reader?.read()
    ac.abort()
    await reader?.cancel().catch(() => {})

    const after = await fetch(`${f.url}/chunk/${f.chunkIds[0]}`)
    assert.equal(Buffer.from(await after.arrayBuffer()), Buffer.from(f.chunks[0]))
  } finally {
    await teardown(f)
  }
})

/** A raw client: sends `request`, reads only as `reading` says, and reports when the server cut it. */
function rawClient (url: string, request: string, reading: boolean): { socket: Socket, received: () => number, closed: Promise<void> } {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  let received = 0
  socket.on('data', (d: Buffer) => { received += d.length })
  if (!reading) socket.once('data', () => { socket.pause() })
  socket.on('error', () => {})
  socket.write(request)
  const closed = new Promise<void>((resolve) => { socket.once('close', () => { resolve() }) })
  return { socket, received: () => received, closed }
}

async function within<T> (what: string, p: Promise<T>, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<T>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: not within ${ms} ms`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

test('a reader that stops reading is cut at the response deadline; the blob never fully left', async () => {
  const size = 48 * 1024 * 1024
  const f = await setup(Infinity, { big: size, init: { responseDeadlineMs: 300 } })
  try {
    const c = rawClient(f.url, `GET /chunk/${f.bigId!} HTTP/1.1\r\nhost: x\r\n\r\n`, false)
    // A paused socket notices nothing; the server's own count says when it cut the response.
    await within('the server cutting a stalled reader', (async () => {
      while (!/cdn_node_http_requests_total\{route="chunk",status="aborted",role="node"\} 1/.test(await (await fetch(`${f.url}/metrics`)).text())) {
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    })())
    c.socket.resume()
    await within('the client seeing the cut', c.closed)
    assert.ok(c.received() < size, `received ${c.received()} of ${size} bytes`)
    // The server is fine afterwards.
    const res = await fetch(`${f.url}/chunk/${f.chunkIds[0]}`)
    assert.equal(Buffer.from(await res.arrayBuffer()), Buffer.from(f.chunks[0]))
  } finally {
    await teardown(f)
  }
})

test('an idle connection is cut by the idle timeout; a client cannot open more than its share', async () => {
  const f = await setup(Infinity, { init: { limits: { idleTimeout: 300, headersTimeout: 300, maxConnectionsPerClient: 2 } } })
  try {
    // Half a request line, then silence: slowloris.
    const slow = rawClient(f.url, 'GET /chunk/', true)
    await within('the idle cut', slow.closed)
    const held = [rawClient(f.url, '', true), rawClient(f.url, '', true)]
    const third = rawClient(f.url, '', true)
    await within('the connection over the cap being closed', third.closed)
    for (const h of held) h.socket.destroy()
  } finally {
    await teardown(f)
  }
})

test('a GET with a body is a 400 and closes the connection', async () => {
  const f = await setup()
  try {
    const c = rawClient(f.url, `GET /chunk/${f.chunkIds[0]} HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello`, true)
    await within('the answer', c.closed)
    assert.ok(c.received() > 0)
    const bad = await fetch(`${f.url}/have/${'x'.repeat(300)}`)
    assert.is(bad.status, 400)
    assert.is(await errorCode(bad), 'ERR_BAD_INPUT')
  } finally {
    await teardown(f)
  }
})

/** A content id of a manifest the node never saw. */
async function signManifestlessId (): Promise<string> {
  const signer = await generateKeyPair('Ed25519')
  const signed = await signManifest({ size: 0, chunkSize: 1, chunks: [], createdAt: new Date().toISOString(), publisher: 'p', meta: '' }, signer, peerIdFromPrivateKey(signer).toString())
  return signed.id.toString()
}

test.run()
