/**
 * Small stand-ins for the proxy's tests: contents built with the real core
 * crypto and manifest code, nodes that serve `/chunk` and `/have` (and can be
 * told to misbehave), and a manager that answers resolves (with capabilities
 * for private contents), signs the pool's node list and records reports.
 * All on 127.0.0.1, port 0.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encodeKey, encryptChunk, newContentKey } from '../../core/chunk-crypto.ts'
import { chunkCid } from '../../core/ids.ts'
import { sealMetadata, signManifest, type Manifest } from '../../core/manifest.ts'
import { signRecord, type NodeListBody } from '../../core/signed-record.ts'
import { bitmapOf } from '../../core/data-plane-wire.ts'

export interface Signer {
  key: PrivateKey
  id: string
}

export async function makeSigner (): Promise<Signer> {
  const key = await generateKeyPair('Ed25519')
  return { key, id: peerIdFromPrivateKey(key).toString() }
}

export interface TestContent {
  id: string
  key: Uint8Array
  manifest: Manifest
  manifestBytes: Uint8Array
  plaintext: Buffer
  /** chunk ids, in order */
  chunkIds: string[]
  /** blob id → blob (chunks and the manifest) */
  blobs: Map<string, Uint8Array>
}

export async function makeContent (opts: { size: number, chunkSize: number, signer: Signer, name?: string, type?: string }): Promise<TestContent> {
  const plaintext = randomBytes(opts.size)
  const key = newContentKey()
  const blobs = new Map<string, Uint8Array>()
  const chunkIds: string[] = []
  for (let off = 0, i = 0; off < opts.size; off += opts.chunkSize, i++) {
    const blob = encryptChunk(key, i, plaintext.subarray(off, Math.min(opts.size, off + opts.chunkSize)))
    const cid = chunkCid(blob).toString()
    chunkIds.push(cid)
    blobs.set(cid, blob)
  }
  const signed = await signManifest({
    size: opts.size,
    chunkSize: opts.chunkSize,
    chunks: chunkIds,
    createdAt: new Date().toISOString(),
    publisher: 'test',
    meta: sealMetadata(key, { name: opts.name ?? 'clip.bin', type: opts.type ?? 'application/octet-stream' })
  }, opts.signer.key, opts.signer.id)
  const id = signed.id.toString()
  blobs.set(id, signed.bytes)
  return { id, key, manifest: signed.manifest, manifestBytes: signed.bytes, plaintext, chunkIds, blobs }
}

async function listen (server: Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function shut (server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
  server.closeAllConnections()
  await closed
}

function json (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

export type Fault = 'corrupt' | 'cut' | 'fail' | 'stall' | 'long'

export interface StandInNode {
  url: string
  /** a peer id, as nodes are named in reports */
  id: string
  /** every blob id asked for with GET /chunk, in order */
  requests: string[]
  /** every request path, in order (chunks, have-bitmaps, anything) */
  paths: string[]
  /** responses to /chunk not finished yet */
  open: number
  /** blob id → how to misbehave when it is asked for */
  faults: Map<string, Fault>
  /** when set, /have requests are never answered */
  stallHave: boolean
  /** Holds a content's manifest and the chunks at `indexes` (default all). */
  hold (content: TestContent, indexes?: number[]): void
  close (): Promise<void>
}

export async function startStandInNode (): Promise<StandInNode> {
  const blobs = new Map<string, Uint8Array>()
  const haves = new Map<string, { chunks: number, bitmap: Uint8Array }>()
  const peer = await makeSigner()
  const node: StandInNode = {
    url: '',
    id: peer.id,
    requests: [],
    paths: [],
    open: 0,
    faults: new Map(),
    stallHave: false,
    hold (content, indexes) {
      const keep = indexes ?? content.chunkIds.map((_, i) => i)
      blobs.set(content.id, content.manifestBytes)
      for (const i of keep) blobs.set(content.chunkIds[i], content.blobs.get(content.chunkIds[i]) as Uint8Array)
      haves.set(content.id, { chunks: content.chunkIds.length, bitmap: bitmapOf(keep, content.chunkIds.length) })
    },
    close: async () => { await shut(server) }
  }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    node.paths.push(req.url ?? '')
    const chunk = /^\/chunk\/([^/]+)$/.exec(req.url ?? '')
    const have = /^\/have\/([^/]+)$/.exec(req.url ?? '')
    if (have != null) {
      if (node.stallHave) return
      const h = haves.get(have[1])
      if (h == null) return json(res, 404, { error: { code: 'ERR_NOT_FOUND', message: 'no such content here' } })
      return json(res, 200, { content: have[1], chunks: h.chunks, bitmap: Buffer.from(h.bitmap).toString('base64') })
    }
    if (chunk == null) return json(res, 404, { error: { code: 'ERR_NOT_FOUND', message: 'no route' } })
    const id = chunk[1]
    node.requests.push(id)
    const blob = blobs.get(id)
    if (blob == null) return json(res, 404, { error: { code: 'ERR_NOT_FOUND', message: 'no such blob here' } })
    const fault = node.faults.get(id)
    if (fault === 'fail') return json(res, 500, { error: { code: 'ERR_INTERNAL', message: 'disk on fire' } })
    node.open++
    res.once('close', () => { node.open-- })
    if (fault === 'stall') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length })
      res.flushHeaders()
      return
    }
    const body = fault === 'corrupt' ? Buffer.from(blob) : blob
    if (fault === 'corrupt') (body as Buffer)[body.length >> 1] ^= 0xff
    if (fault === 'long') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      res.end(Buffer.concat([blob, Buffer.from('extra')]))
      return
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length, etag: `"${id}"` })
    if (fault === 'cut') {
      res.write(body.subarray(0, body.length >> 1), () => { res.socket?.destroy() })
      return
    }
    res.end(body)
  })
  node.url = await listen(server)
  return node
}

export interface StandInManager {
  url: string
  signer: Signer
  /** bodies of POST /api/reports */
  reports: any[]
  /** how many times each content was resolved */
  resolves: Map<string, number>
  /** the x-cdn-capability header of every resolve, in order (undefined: none sent) */
  capabilities: Array<string | undefined>
  /** multiaddrs /api/info announces (empty: no libp2p) */
  multiaddrs: string[]
  /**
   * What /api/info says beside the signer: a manager of a pool of several has
   * its own peerId and names the pool (the signer) in `pool`; unset, it
   * answers as an older manager, its peerId being the signer
   */
  poolInfo?: { peerId: string, managers?: string[] }
  /** every request path, in order */
  paths: string[]
  /**
   * The nodes `GET /api/pool/nodes` signs into its list (every holder a
   * publish names joins it); null: the route answers 404, as a manager
   * that does not serve it yet.
   */
  pool: Map<string, string> | null
  /** ms a signed node list stays valid (default 1 h) */
  listTtlMs: number
  /** how many node lists were asked for */
  listRequests: number
  /** Adds nodes to the pool's list without making them hold anything. */
  join (nodes: Array<{ id: string, url: string }>): void
  /**
   * Makes a content resolvable with these holders; `private` contents are
   * refused (401 without a capability, 403 with a wrong one) as the manager
   * refuses keys; `capability` is the one it accepts.
   */
  publish (content: TestContent, holders: StandInNode[] | Array<{ id: string, url: string }>, opts?: { private?: boolean, capability?: string }): void
  /** Forgets a content, as a delete does: its resolves answer 404. */
  remove (id: string): void
  close (): Promise<void>
}

export async function startStandInManager (signer: Signer): Promise<StandInManager> {
  let seq = 0
  const contents = new Map<string, { content: TestContent, holders: Array<{ id: string, url: string }>, private: boolean, capability?: string }>()
  const m: StandInManager = {
    url: '',
    signer,
    reports: [],
    resolves: new Map(),
    capabilities: [],
    multiaddrs: [],
    paths: [],
    pool: new Map(),
    listTtlMs: 3600_000,
    listRequests: 0,
    join (nodes) {
      for (const n of nodes) m.pool?.set(n.id, n.url)
    },
    publish (content, holders, opts) {
      const list = holders.map(h => ({ id: h.id, url: h.url }))
      m.join(list)
      contents.set(content.id, { content, holders: list, private: opts?.private === true, capability: opts?.capability })
    },
    remove (id) {
      contents.delete(id)
    },
    close: async () => { await shut(server) }
  }
  const server = createServer((req, res) => {
    const url = req.url ?? ''
    m.paths.push(url)
    if (req.method === 'GET' && url === '/api/info') {
      const own = m.poolInfo == null ? { peerId: signer.id } : { peerId: m.poolInfo.peerId, pool: signer.id, managers: m.poolInfo.managers ?? [m.url] }
      return json(res, 200, { ...own, multiaddrs: m.multiaddrs, http: m.url })
    }
    if (req.method === 'GET' && url === '/api/pool/nodes') {
      m.listRequests++
      if (m.pool == null) return json(res, 404, { error: { code: 'ERR_NOT_FOUND', message: 'no route' } })
      const now = Date.now()
      // Strictly increasing, as the manager's: two lists in one millisecond are still ordered.
      seq = Math.max(seq + 1, now)
      const body: NodeListBody = { kind: 'node-list', iss: signer.id, iat: now, exp: now + m.listTtlMs, seq, nodes: [...m.pool].map(([peerId, http]) => ({ peerId, http })) }
      signRecord(body, signer.key).then((list) => { json(res, 200, { list }) }, (err: unknown) => { json(res, 500, { error: { code: 'ERR_INTERNAL', message: String(err) } }) })
      return
    }
    const resolve = /^\/api\/contents\/([^/]+)$/.exec(url)
    if (req.method === 'GET' && resolve != null) {
      const id = resolve[1]
      m.resolves.set(id, (m.resolves.get(id) ?? 0) + 1)
      const cap = req.headers['x-cdn-capability']
      m.capabilities.push(typeof cap === 'string' ? cap : undefined)
      const entry = contents.get(id)
      if (entry == null) return json(res, 404, { error: { code: 'ERR_NOT_FOUND', message: `unknown content ${id}` } })
      if (entry.private && cap == null) return json(res, 401, { error: { code: 'ERR_UNAUTHORIZED', message: 'private content: a capability is needed' } })
      if (entry.private && cap !== entry.capability) return json(res, 403, { error: { code: 'ERR_FORBIDDEN', message: 'capability expired or not for this content' } })
      return json(res, 200, {
        id,
        manifest: Buffer.from(entry.content.manifestBytes).toString('base64'),
        key: encodeKey(entry.content.key),
        holders: entry.holders.map(h => ({ peerId: h.id, http: h.url, multiaddrs: [] }))
      })
    }
    if (req.method === 'POST' && url === '/api/reports') {
      const parts: Buffer[] = []
      req.on('data', (d: Buffer) => parts.push(d))
      req.on('end', () => {
        m.reports.push(JSON.parse(Buffer.concat(parts).toString('utf8')))
        json(res, 202, { ok: true })
      })
      return
    }
    json(res, 404, { error: { code: 'ERR_NOT_FOUND', message: 'no route' } })
  })
  m.url = await listen(server)
  return m
}

/** Waits for a condition the code under test reaches on its own; gives up after `limitMs` so a bug fails instead of hanging. */
export async function eventually (check: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const until = Date.now() + limitMs
  while (!check()) {
    if (Date.now() > until) throw new Error(`never happened: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

export async function collect (body: AsyncIterable<Uint8Array>): Promise<{ bytes: Buffer, pieces: number }> {
  const parts: Uint8Array[] = []
  for await (const p of body) parts.push(p)
  return { bytes: Buffer.concat(parts), pieces: parts.length }
}
