/**
 * The manager end to end in one process: a real manager (HTTP + libp2p) and
 * stand-in nodes built here, which join over the control protocol and obey
 * store orders by fetching the staging URL and checking the hash.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { Agent, request } from 'undici'
import { decodeKey, decryptChunk } from '../../../../core/chunk-crypto.ts'
import { rpcCall, serveRpc } from '../../../../core/control-rpc.ts'
import { ForbiddenError } from '../../../../core/errors.ts'
import { createHost, type Host } from '../../../../core/host.ts'
import { chunkCid, manifestCid, matchesCid, parseBlobId } from '../../../../core/ids.ts'
import { silentLogger } from '../../../../core/log.ts'
import { chunkLength, decodeManifest, openMetadata, verifyManifest } from '../../../../core/manifest.ts'
import { CDC_DEFAULTS } from '../../../../core/cdc-chunker.ts'
import { CONTROL_PROTOCOL, parseOrder, type StoreResult } from '../../../../core/wire.ts'
import { createTlsAgent, readCaFile } from '../../../../core/tls-client.ts'
import { startManager, type ManagerDaemon } from '../../../../manager/daemon.ts'
import { selfSignedCert } from '../../tls-cert.ts'

const PUBLISHER = 'publisher-token-1'
const JOIN = 'join-token-1'
const CHUNK = 256 * 1024
const MAX_UPLOAD = 16 * 1024 * 1024
const agent = new Agent({ connections: 8 })
const dirs: string[] = []

async function tempDir (): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'cdn-manager-'))
  dirs.push(d)
  return d
}

async function until (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > end) assert.unreachable(`gave up waiting: ${what}`)
    await sleep(25)
  }
}

// ---- stand-in nodes ---------------------------------------------------------

interface StandIn {
  host: Host
  peerId: string
  blobs: Map<string, Uint8Array>
  indexed: Set<string>
  deleteOrders: number
  /** when set, every store order is answered with failed results */
  failStores: boolean
  stop: () => Promise<void>
}

async function startStandIn (manager: ManagerDaemon, zone?: string): Promise<StandIn> {
  const host = await createHost({ privateKey: await generateKeyPair('Ed25519'), dhtServer: true })
  const node: StandIn = {
    host,
    peerId: host.peerId.toString(),
    blobs: new Map(),
    indexed: new Set(),
    deleteOrders: 0,
    failStores: false,
    stop: async () => { await host.stop() }
  }
  await serveRpc(host, CONTROL_PROTOCOL, async (req, remote, { signal }) => {
    if (remote.toString() !== manager.peerId) throw new ForbiddenError('not my manager')
    const order = parseOrder(req)
    if (order.type === 'store') {
      const results = await Promise.all(order.blobs.map(async (b): Promise<StoreResult> => {
        if (node.failStores) return { cid: b.cid, ok: false, error: 'disk on fire' }
        try {
          const res = await request(b.sources[0], { dispatcher: agent, signal })
          const bytes = new Uint8Array(await res.body.arrayBuffer())
          if (res.statusCode !== 200) return { cid: b.cid, ok: false, error: `HTTP ${res.statusCode}` }
          if (!matchesCid(parseBlobId(b.cid), bytes)) return { cid: b.cid, ok: false, error: 'hash mismatch' }
          node.blobs.set(b.cid, bytes)
          return { cid: b.cid, ok: true }
        } catch (err) {
          return { cid: b.cid, ok: false, error: String(err) }
        }
      }))
      for (const c of order.contents) node.indexed.add(c)
      return { type: 'stored', results }
    }
    if (order.type === 'remove') return { type: 'removed' }
    node.deleteOrders++
    const removed = order.blobs.filter(b => node.blobs.delete(b))
    for (const c of order.contents) node.indexed.delete(c)
    return { type: 'deleted', removed }
  }, { allow: () => true })
  const reply = await rpcCall(host, multiaddr(manager.multiaddrs[0]), CONTROL_PROTOCOL, {
    type: 'join', token: JOIN, http: 'http://127.0.0.1:9', capacity: 10e9, ...(zone != null ? { zone } : {})
  })
  assert.is((reply as { type: string }).type, 'joined')
  return node
}

// ---- HTTP helpers -------------------------------------------------------------

async function api (manager: ManagerDaemon, method: 'GET' | 'POST' | 'DELETE' | 'PUT', path: string, opts: { token?: string, body?: string | Buffer, headers?: Record<string, string> } = {}): Promise<{ status: number, json: any, headers: Record<string, unknown> }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) }
  if (opts.token != null) headers.authorization = `Bearer ${opts.token}`
  const res = await request(`${manager.http}${path}`, { method, headers, body: opts.body, dispatcher: agent, signal: AbortSignal.timeout(60_000) })
  const text = await res.body.text()
  return { status: res.statusCode, json: text === '' ? undefined : JSON.parse(text), headers: res.headers }
}

/** `token: null` sends no authorization header. */
async function publish (manager: ManagerDaemon, data: Buffer, headers: Record<string, string> = {}, token: string | null = PUBLISHER): Promise<{ status: number, json: any }> {
  return api(manager, 'POST', '/api/publish', {
    token: token ?? undefined,
    body: data,
    headers: { 'x-cdn-name': encodeURIComponent('my movie (1).mp4'), 'content-type': 'video/mp4', 'x-cdn-replicas': '2', 'x-cdn-chunk-size': String(CHUNK), ...headers }
  })
}

/**
 * Starts an upload over a raw socket announcing `announced` bytes; the caller
 * sends (part of) the body. Small chunks, so that nodes get orders early.
 */
async function rawUpload (manager: ManagerDaemon, announced: number, chunkSize = 16 * 1024): Promise<Socket> {
  const url = new URL(manager.http)
  const socket = connect(Number(url.port), url.hostname)
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  socket.on('error', () => { /* the manager may cut us off; that is the point */ })
  socket.write([
    'POST /api/publish HTTP/1.1',
    `host: ${url.host}`,
    `authorization: Bearer ${PUBLISHER}`,
    'x-cdn-name: truncated.bin',
    'x-cdn-replicas: 2',
    `x-cdn-chunk-size: ${chunkSize}`,
    `content-length: ${announced}`,
    '', ''
  ].join('\r\n'))
  return socket
}

function totalBlobs (nodes: StandIn[]): number {
  return nodes.reduce((n, s) => n + s.blobs.size, 0)
}

// ---- the shared pool ----------------------------------------------------------

const dataDir = await tempDir()
const manager = await startManager({
  dataDir,
  publisherTokens: [PUBLISHER],
  joinTokens: [JOIN],
  replicas: 2,
  chunkSize: CHUNK,
  maxUploadBytes: MAX_UPLOAD,
  heartbeatMs: 60_000,
  logger: silentLogger()
})
const nodes = [await startStandIn(manager, 'a'), await startStandIn(manager, 'b'), await startStandIn(manager, 'c')]
/** The first start wrote an admin token; listings, nodes and events need a token. */
const ADMIN = (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim()

test.after(async () => {
  for (const n of nodes) await n.stop()
  await manager.stop()
  await agent.close()
  for (const d of dirs) await rm(d, { recursive: true, force: true })
})

function clearNodes (): void {
  for (const n of nodes) {
    n.blobs.clear()
    n.indexed.clear()
    n.failStores = false
  }
}

test('info names the manager, its libp2p addresses, the pool identity and the live managers', async () => {
  const { status, json } = await api(manager, 'GET', '/api/info')
  assert.is(status, 200)
  assert.is(json.peerId, manager.peerId)
  assert.is(json.http, manager.http)
  assert.ok(json.multiaddrs.length > 0 && json.multiaddrs.every((a: string) => a.endsWith(`/p2p/${manager.peerId}`)))
  assert.is(json.pool, manager.pool)
  assert.is.not(json.pool, manager.peerId, 'a new pool signs with its own key, not a manager\'s')
  assert.equal(json.managers, [manager.http])
})

test('nodes that joined are listed alive', async () => {
  const { status, json } = await api(manager, 'GET', '/api/nodes', { token: ADMIN })
  assert.is(status, 200)
  assert.equal(json.nodes.map((n: any) => n.peerId).sort(), nodes.map(n => n.peerId).sort())
  assert.ok(json.nodes.every((n: any) => n.state === 'alive' && n.capacity === 10e9 && typeof n.lastSeen === 'string'))
})

/** Publishes 1 MiB on emptied stand-ins. */
async function freshContent (): Promise<{ id: string, manifest: ReturnType<typeof decodeManifest> }> {
  clearNodes()
  const { status, json } = await publish(manager, randomBytes(1024 * 1024))
  assert.is(status, 201, JSON.stringify(json))
  const resolved = await api(manager, 'GET', `/api/contents/${json.id}`)
  return { id: json.id, manifest: decodeManifest(Buffer.from(resolved.json.manifest, 'base64')) }
}

test('a few MiB published with R=2 are listed, resolvable, signed and decrypt to the original', async () => {
  clearNodes()
  const data = randomBytes(3 * 1024 * 1024 + 12345)
  const { status, json } = await publish(manager, data)
  assert.is(status, 201, JSON.stringify(json))
  const chunks = Math.ceil(data.length / CHUNK)
  assert.equal({ size: json.size, chunks: json.chunks, replicas: json.replicas }, { size: data.length, chunks, replicas: 2 })

  const list = await api(manager, 'GET', '/api/contents', { token: ADMIN })
  const entry = list.json.contents.find((c: any) => c.id === json.id)
  assert.ok(entry, 'the content is listed')
  assert.is(entry.name, 'my movie (1).mp4')
  assert.is(entry.type, 'video/mp4')
  assert.is(entry.size, data.length)
  assert.is(entry.copies.min, 2)

  const resolved = await api(manager, 'GET', `/api/contents/${json.id}`)
  assert.is(resolved.status, 200)
  assert.is(resolved.json.key, json.key)
  const manifestBytes = Buffer.from(resolved.json.manifest, 'base64')
  const manifest = decodeManifest(manifestBytes)
  await verifyManifest(manifest, [manager.pool])
  assert.is(manifest.chunks.length, chunks)
  const key = decodeKey(resolved.json.key)
  assert.equal(openMetadata(key, manifest), { name: 'my movie (1).mp4', type: 'video/mp4' })

  const parts: Uint8Array[] = []
  manifest.chunks.forEach((cid, i) => {
    const holders = nodes.filter(n => n.blobs.has(cid))
    assert.is(holders.length, 2, `chunk ${i} has exactly R copies`)
    parts.push(decryptChunk(key, i, holders[0].blobs.get(cid)!))
  })
  assert.ok(Buffer.concat(parts).equals(data), 'the chunks decrypt to the original bytes')

  // Every node holding a chunk holds the manifest and was told to index the content.
  const holding = nodes.filter(n => manifest.chunks.some(c => n.blobs.has(c)))
  assert.equal(resolved.json.holders.map((h: any) => h.peerId).sort(), holding.map(n => n.peerId).sort())
  for (const n of holding) {
    assert.ok(n.indexed.has(json.id))
    assert.ok(matchesCid(parseBlobId(json.id), n.blobs.get(json.id)!), 'the manifest blob is the content id')
  }
  // Staging is emptied once the upload is done.
  const staged = await api(manager, 'GET', `/staging/${manifest.chunks[0]}`)
  assert.is(staged.status, 404)

  const events = await api(manager, 'GET', '/api/events?limit=5', { token: ADMIN })
  assert.ok(events.json.events.some((e: any) => e.kind === 'content-published' && e.content === json.id))
})

test('a missing or wrong token is refused with 401, a token of another role with 403, and nothing is stored', async () => {
  clearNodes()
  const before = (await api(manager, 'GET', '/api/contents', { token: ADMIN })).json.contents.length
  for (const token of [null, 'wrong-token']) {
    const { status, json } = await publish(manager, randomBytes(300 * 1024), {}, token)
    assert.is(status, 401)
    assert.is(json.error.code, 'ERR_UNAUTHORIZED')
  }
  const { status, json } = await publish(manager, randomBytes(300 * 1024), {}, JOIN)
  assert.is(status, 403)
  assert.is(json.error.code, 'ERR_FORBIDDEN')
  assert.is(totalBlobs(nodes), 0)
  assert.is((await api(manager, 'GET', '/api/contents', { token: ADMIN })).json.contents.length, before)
})

test('a truncated upload publishes nothing and its stored blobs are deleted', async () => {
  clearNodes()
  const before = (await api(manager, 'GET', '/api/contents', { token: ADMIN })).json.contents.length
  const socket = await rawUpload(manager, 4 * 1024 * 1024)
  socket.write(randomBytes(2 * 1024 * 1024 + 100))
  // Wait until nodes really hold some of it, so the cleanup has something to undo.
  await until('some chunks stored', () => totalBlobs(nodes) > 0)
  socket.destroy()
  await until('a publish-failed event', async () => (await api(manager, 'GET', '/api/events?limit=20', { token: ADMIN })).json.events.some((e: any) => e.kind === 'publish-failed'))
  await until('stored blobs deleted', () => totalBlobs(nodes) === 0)
  assert.is((await api(manager, 'GET', '/api/contents', { token: ADMIN })).json.contents.length, before)
  assert.ok(nodes.some(n => n.deleteOrders > 0))
})

test('an upload over the size limit is refused with 413, announced or not', async () => {
  clearNodes()
  const socket = await rawUpload(manager, MAX_UPLOAD + 1)
  const answer = await new Promise<string>((resolve) => {
    let text = ''
    socket.on('data', (d: Buffer) => { text += d.toString('latin1') })
    socket.on('close', () => { resolve(text) })
  })
  assert.match(answer, /^HTTP\/1\.1 413 /)
  assert.match(answer, /ERR_TOO_LARGE/)

  // A body without content-length is cut off when it crosses the limit.
  async function * stream (): AsyncGenerator<Buffer> {
    for (let sent = 0; sent <= MAX_UPLOAD; sent += 1024 * 1024) yield randomBytes(1024 * 1024)
  }
  const res = await request(`${manager.http}/api/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${PUBLISHER}`, 'x-cdn-replicas': '2' },
    body: Readable.from(stream()),
    dispatcher: agent
  }).catch((err: unknown) => err as Error)
  // The manager may cut the connection before the client reads the 413; either way nothing is kept.
  if (!(res instanceof Error)) {
    const body = await res.body.text()
    assert.is(res.statusCode, 413, body)
  }
  await until('blobs of the refused upload deleted', () => totalBlobs(nodes) === 0)
  assert.not.ok((await api(manager, 'GET', '/api/contents', { token: ADMIN })).json.contents.some((c: any) => c.name === 'untitled'))
})

test('more replicas than eligible nodes is refused with 507 and nothing is stored', async () => {
  clearNodes()
  const { status, json } = await publish(manager, randomBytes(100_000), { 'x-cdn-replicas': '4' })
  assert.is(status, 507)
  assert.is(json.error.code, 'ERR_CAPACITY')
  assert.is(totalBlobs(nodes), 0)
})

test('copies a node fails to store are placed on another node', async () => {
  clearNodes()
  nodes[0].failStores = true
  const data = randomBytes(2 * 1024 * 1024)
  const { status, json } = await publish(manager, data)
  assert.is(status, 201, JSON.stringify(json))
  const manifest = decodeManifest(Buffer.from((await api(manager, 'GET', `/api/contents/${json.id}`)).json.manifest, 'base64'))
  for (const cid of manifest.chunks) {
    assert.ok(nodes[1].blobs.has(cid) && nodes[2].blobs.has(cid), 'both healthy nodes hold every chunk')
  }
  assert.is(nodes[0].blobs.size, 0)
  nodes[0].failStores = false
  await api(manager, 'DELETE', `/api/contents/${json.id}`, { token: PUBLISHER })
})

test('when too few nodes can store, the upload fails with 502 and is undone', async () => {
  clearNodes()
  nodes[0].failStores = true
  nodes[1].failStores = true
  const { status, json } = await publish(manager, randomBytes(600_000))
  assert.is(status, 502, JSON.stringify(json))
  await until('stored blobs deleted', () => totalBlobs(nodes) === 0)
  clearNodes()
})

test('x-cdn-chunking: cdc cuts by content: a version 2 manifest whose offsets tile the file', async () => {
  clearNodes()
  const data = randomBytes(10 * 1024 * 1024 + 777)
  const { status, json } = await api(manager, 'POST', '/api/publish', { token: PUBLISHER, body: data, headers: { 'x-cdn-replicas': '2', 'x-cdn-chunking': 'cdc' } })
  assert.is(status, 201, JSON.stringify(json))
  const resolved = await api(manager, 'GET', `/api/contents/${json.id}`)
  const manifest = decodeManifest(Buffer.from(resolved.json.manifest, 'base64'))
  await verifyManifest(manifest, [manager.pool])
  assert.is(manifest.v, 2)
  assert.is(manifest.chunkSize, CDC_DEFAULTS.max)
  assert.is(json.chunks, manifest.chunks.length)
  const lengths = manifest.chunks.map((_, i) => chunkLength(manifest, i))
  assert.ok(new Set(lengths).size > 1, 'chunks of different sizes')
  assert.ok(lengths.slice(0, -1).every(n => n >= CDC_DEFAULTS.min && n <= CDC_DEFAULTS.max), lengths.join(','))
  const key = decodeKey(resolved.json.key)
  const parts = manifest.chunks.map((cid, i) => {
    const holders = nodes.filter(n => n.blobs.has(cid))
    assert.is(holders.length, 2, `chunk ${i} has exactly R copies`)
    const plain = decryptChunk(key, i, holders[0].blobs.get(cid)!)
    assert.is(plain.length, lengths[i])
    return plain
  })
  assert.ok(Buffer.concat(parts).equals(data), 'the chunks decrypt to the original bytes')
  // The manager's default stays fixed: the same bytes without the header make a version 1 manifest.
  const fixed = await publish(manager, data.subarray(0, 1024 * 1024))
  const plain = await api(manager, 'GET', `/api/contents/${fixed.json.id}`)
  assert.is(decodeManifest(Buffer.from(plain.json.manifest, 'base64')).v, 1)
  clearNodes()
})

test('bad input gets a clear 4xx', async () => {
  const cases: Array<[string, string, number, Record<string, string>?]> = [
    ['GET', '/api/contents/not-a-cid', 400],
    ['GET', `/api/contents/${chunkCid(randomBytes(10)).toString()}`, 400], // a chunk id, not a content id
    ['GET', `/api/contents/${manifestCid(randomBytes(10)).toString()}`, 404],
    ['GET', '/api/nowhere', 404],
    ['PUT', '/api/contents', 405],
    ['GET', '/api/publish', 405],
    ['GET', '/api/events?limit=abc', 400],
    ['GET', '/api/events?limit=0', 400],
    ['GET', '/staging/..%2F..%2Fetc%2Fpasswd', 400],
    ['POST', '/api/publish', 400, { 'x-cdn-replicas': 'two' }],
    ['POST', '/api/publish', 400, { 'x-cdn-replicas': '0' }],
    ['POST', '/api/publish', 400, { 'x-cdn-chunk-size': '10' }],
    ['POST', '/api/publish', 400, { 'x-cdn-chunking': 'rolling' }],
    ['POST', '/api/publish', 400, { 'x-cdn-chunking': 'cdc', 'x-cdn-chunk-size': '65536' }],
    ['POST', '/api/publish', 400, { 'x-cdn-name': '%E0%A4%A' }],
    ['POST', '/api/publish', 400, { 'content-type': 'not a media type' }]
  ]
  for (const [method, path, want, headers] of cases) {
    const r = await api(manager, method as 'GET', path, { token: PUBLISHER, headers, body: method === 'POST' ? 'x' : undefined })
    assert.is(r.status, want, `${method} ${path} ${JSON.stringify(headers ?? {})}`)
    assert.type(r.json?.error?.code, 'string')
  }
  const r = await api(manager, 'PUT', '/api/contents')
  assert.is(r.headers.allow, 'GET')
  assert.is(totalBlobs(nodes), 0)
})

test('a bad-copy report is checked first: an accused node that cannot be asked loses nothing', async () => {
  const { id, manifest } = await freshContent()
  const chunk = manifest.chunks[0]
  const holder = nodes.find(n => n.blobs.has(chunk)) ?? nodes[0]
  const bad = [
    '{"content":',
    JSON.stringify({ content: id, chunk, node: 'nobody', reason: 'hash mismatch' }),
    JSON.stringify({ content: 'x', chunk, node: holder.peerId }),
    JSON.stringify({ content: id, chunk: chunkCid(randomBytes(10)).toString(), node: holder.peerId })
  ]
  for (const body of bad) assert.is((await api(manager, 'POST', '/api/reports', { body, headers: { 'content-type': 'application/json' } })).status, 400, body)
  const ok = await api(manager, 'POST', '/api/reports', { body: JSON.stringify({ content: id, chunk, node: holder.peerId, reason: 'hash mismatch' }) })
  assert.is(ok.status, 202)
  assert.equal(ok.json, { accepted: true, verifying: true })
  // The stand-in nodes have no data plane (http://127.0.0.1:9): the copy cannot be fetched, so it stays counted.
  let events: any[] = []
  const end = Date.now() + 30_000
  while (!events.some((e: any) => e.kind === 'bad-copy-unverified' && e.node === holder.peerId)) {
    if (Date.now() > end) throw new Error('no verdict on the report')
    await new Promise(resolve => setTimeout(resolve, 50))
    events = (await api(manager, 'GET', '/api/events?limit=5', { token: ADMIN })).json.events
  }
  assert.is(events.find((e: any) => e.kind === 'bad-copy-unverified').detail.chunk, chunk)
  const entry = (await api(manager, 'GET', '/api/contents', { token: ADMIN })).json.contents.find((c: any) => c.id === id)
  assert.is(entry.copies.min, 2, 'an unproven report changes nothing')
})

test('deleting needs a token, then removes the blobs, the listing and the key', async () => {
  const { id } = await freshContent()
  assert.ok(totalBlobs(nodes) > 0)
  assert.is((await api(manager, 'DELETE', `/api/contents/${id}`)).status, 401)
  assert.is((await api(manager, 'DELETE', `/api/contents/${id}`, { token: 'wrong' })).status, 401)
  const r = await api(manager, 'DELETE', `/api/contents/${id}`, { token: PUBLISHER })
  assert.equal({ status: r.status, json: r.json }, { status: 200, json: { id, deleted: true } })
  assert.is(totalBlobs(nodes), 0)
  assert.ok(nodes.every(n => !n.indexed.has(id)))
  assert.is((await api(manager, 'GET', `/api/contents/${id}`)).status, 404)
  assert.not.ok((await api(manager, 'GET', '/api/contents', { token: ADMIN })).json.contents.some((c: any) => c.id === id))
  assert.is((await api(manager, 'DELETE', `/api/contents/${id}`, { token: PUBLISHER })).status, 404)
})

test('an empty file publishes: no chunks, the manifest on R nodes', async () => {
  clearNodes()
  const { status, json } = await publish(manager, Buffer.alloc(0))
  assert.is(status, 201, JSON.stringify(json))
  assert.is(json.chunks, 0)
  assert.is(nodes.filter(n => n.blobs.has(json.id)).length, 2)
  await api(manager, 'DELETE', `/api/contents/${json.id}`, { token: PUBLISHER })
})

test('metrics count publishes and orders', async () => {
  const res = await request(`${manager.http}/metrics`, { dispatcher: agent })
  const text = await res.body.text()
  assert.is(res.statusCode, 200)
  assert.match(text, /cdn_manager_publishes_total\{outcome="ok",role="manager"\} [1-9]/)
  assert.match(text, /cdn_manager_orders_total\{kind="store",outcome="ok",role="manager"\} [1-9]/)
  assert.match(text, /cdn_manager_nodes\{state="alive",role="manager"\} 3/)
})

test('an upload cut short by a stop is cleaned up at the next start', async () => {
  const dir = await tempDir()
  const first = await startManager({ dataDir: dir, publisherTokens: [PUBLISHER], joinTokens: [JOIN], replicas: 2, chunkSize: CHUNK, heartbeatMs: 60_000, logger: silentLogger() })
  const pool = [await startStandIn(first, 'a'), await startStandIn(first, 'b')]
  try {
    const socket = await rawUpload(first, 4 * 1024 * 1024)
    socket.write(randomBytes(2 * 1024 * 1024))
    await until('some chunks stored', () => totalBlobs(pool) > 0)
    await first.stop()
    socket.destroy()
    assert.ok(totalBlobs(pool) > 0, 'a stopping manager sends no deletes: it cannot finish them')

    const second = await startManager({ dataDir: dir, replicas: 2, heartbeatMs: 60_000, logger: silentLogger() })
    try {
      assert.is(second.peerId, first.peerId)
      const secondAdmin = (await readFile(join(dir, 'admin.token'), 'utf8')).trim()
      await until('orphans of the interrupted upload deleted', () => totalBlobs(pool) === 0)
      const events = (await api(second, 'GET', '/api/events?limit=5', { token: secondAdmin })).json.events
      assert.ok(events.some((e: any) => e.kind === 'publish-failed' && e.detail.code === 'ERR_ABANDONED'))
      assert.equal((await api(second, 'GET', '/api/contents', { token: secondAdmin })).json.contents, [])
    } finally {
      await second.stop()
    }
  } finally {
    for (const n of pool) await n.stop()
    await first.stop()
  }
})

test('a publish body that stalls is cut after the idle timeout and publishes nothing', async () => {
  const dir = await tempDir()
  const m = await startManager({ dataDir: dir, publisherTokens: [PUBLISHER], joinTokens: [JOIN], replicas: 2, chunkSize: CHUNK, heartbeatMs: 60_000, httpLimits: { idleTimeout: 1000 }, logger: silentLogger() })
  const pool = [await startStandIn(m, 'a'), await startStandIn(m, 'b')]
  const admin = (await readFile(join(dir, 'admin.token'), 'utf8')).trim()
  try {
    const socket = await rawUpload(m, 4 * 1024 * 1024)
    let answer = ''
    socket.on('data', (d: Buffer) => { answer += d.toString('latin1') })
    const closed = new Promise<void>(resolve => { socket.once('close', () => { resolve() }) })
    socket.write(randomBytes(1024 * 1024 + 100))
    // Then nothing more: the manager must cut the socket rather than wait for the rest.
    const cut = await Promise.race([closed.then(() => true), sleep(30_000).then(() => false)])
    assert.ok(cut, 'the stalled upload is still open after 30 s')
    assert.match(answer, /^HTTP\/1\.1 400 [\s\S]*upload stalled/)
    await until('a publish-failed event', async () => (await api(m, 'GET', '/api/events?limit=20', { token: admin })).json.events.some((e: any) => e.kind === 'publish-failed'))
    await until('stored blobs deleted', () => totalBlobs(pool) === 0)
    assert.equal((await api(m, 'GET', '/api/contents', { token: admin })).json.contents, [])
  } finally {
    for (const n of pool) await n.stop()
    await m.stop()
  }
})

test('over HTTPS: the API needs the CA, nodes still fetch blobs over plain HTTP on the same port', async () => {
  const dir = await tempDir()
  const tls = await selfSignedCert(dir)
  const m = await startManager({
    dataDir: join(dir, 'manager'),
    publisherTokens: [PUBLISHER],
    joinTokens: [JOIN],
    replicas: 2,
    chunkSize: CHUNK,
    heartbeatMs: 60_000,
    tls: { cert: await readFile(tls.cert), key: await readFile(tls.key) },
    logger: silentLogger()
  })
  const pool = [await startStandIn(m, 'a'), await startStandIn(m, 'b')]
  const trusting = createTlsAgent(await readCaFile(tls.cert))
  try {
    assert.match(m.http, /^https:\/\/127\.0\.0\.1:\d+$/)
    const data = randomBytes(700_000)
    const res = await request(`${m.http}/api/publish`, {
      method: 'POST',
      dispatcher: trusting,
      headers: { authorization: `Bearer ${PUBLISHER}`, 'x-cdn-replicas': '2', 'content-length': String(data.length) },
      body: data
    })
    const published = await res.body.json() as any
    assert.is(res.statusCode, 201, JSON.stringify(published))
    assert.ok(totalBlobs(pool) > 0, 'the nodes fetched the staged chunks')
    const resolved = await request(`${m.http}/api/contents/${published.id}`, { dispatcher: trusting })
    assert.is(resolved.statusCode, 200)
    assert.is(((await resolved.body.json()) as any).key, published.key)

    // Without the CA the client refuses the manager.
    const refused = await request(`${m.http}/api/info`, { dispatcher: agent }).then(() => undefined, (e: unknown) => e as { code?: string })
    assert.ok(refused != null && /CERT|SIGNED/.test(String(refused.code)), String(refused?.code))

    // Plain HTTP on the same port: blobs yes, the API no.
    const plain = m.http.replace('https://', 'http://')
    const manifest = await request(`${plain}/manifest/${published.id}`, { dispatcher: agent })
    assert.is(manifest.statusCode, 200)
    assert.ok(matchesCid(parseBlobId(published.id), new Uint8Array(await manifest.body.arrayBuffer())))
    const api = await request(`${plain}/api/contents/${published.id}`, { dispatcher: agent })
    const answer = await api.body.json() as any
    assert.is(api.statusCode, 400)
    assert.match(answer.error.message, /HTTPS only/)
    assert.not.ok(JSON.stringify(answer).includes(published.key))
  } finally {
    await trusting.close()
    for (const n of pool) await n.stop()
    await m.stop()
  }
})

test.run()
