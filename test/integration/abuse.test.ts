/**
 * The abuse suite: every endpoint of every role, attacked the way a stranger
 * on the network (or a page in the viewer's browser) would, against a real
 * `cdn up` network. Every attack must end in a 4xx, or in a cut connection
 * where HTTP allows nothing better: never a 5xx, a crash or a hang. Afterwards
 * every daemon is still running and the content still downloads intact.
 *
 * The attacks are rows of one table; adding one is one line.
 */
import { generateKeyPair } from '@libp2p/crypto/keys'
import { connect } from 'node:net'
import { rm } from 'node:fs/promises'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeFrame, readFrame } from '../../core/control-rpc.ts'
import { createHost } from '../../core/host.ts'
import { CONTROL_PROTOCOL } from '../../core/wire.ts'
import { cdnJson, eventually, getJson, randomFile, sha256File, startNetwork, tempDir, type Network } from './harness.ts'

type Target = 'manager' | 'node' | 'proxy'
/** An answer's status, or `cut` when the server closed the connection without one. */
type Outcome = number | 'cut'
interface Attack {
  name: string
  target: Target
  method: string
  path: string
  headers?: Record<string, string>
  body?: string
  /** the allowed answers; default: any 4xx */
  expect?: Outcome[]
}

/** Values filled in once the network is up: ids, tokens, capabilities. */
interface World {
  net: Network
  id: string
  privateId: string
  chunk: string
  node: string
  publisherB: string
  reader: string
  revoked: string
  expiredCap: string
  forgedCap: string
}

const BAD_CID = 'bafy-not-a-cid'
const FOREIGN_PEER = '12D3KooWGzBzmFXtxG8tdMQ3xELDNnZfWz4UiA2P1hXGp9jDpTnq'

function attacks (w: World): Attack[] {
  const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` })
  const admin = bearer(w.net.adminToken)
  const pub = bearer(w.net.token)
  return [
    // ---- manager: no token, wrong role, revoked token --------------------------------
    { name: 'list contents without a token', target: 'manager', method: 'GET', path: '/api/contents', expect: [401] },
    { name: 'list contents with a revoked token', target: 'manager', method: 'GET', path: '/api/contents', headers: bearer(w.revoked), expect: [401] },
    { name: 'list contents with a made-up token', target: 'manager', method: 'GET', path: '/api/contents', headers: bearer('x'.repeat(40)), expect: [401] },
    { name: 'list nodes without a token', target: 'manager', method: 'GET', path: '/api/nodes', expect: [401] },
    { name: 'events without a token', target: 'manager', method: 'GET', path: '/api/events', expect: [401] },
    { name: 'replication health without a token', target: 'manager', method: 'GET', path: '/api/health/replication', expect: [401] },
    { name: 'publish without a token', target: 'manager', method: 'POST', path: '/api/publish', body: 'hello', expect: [401] },
    { name: 'publish with a reader token', target: 'manager', method: 'POST', path: '/api/publish', headers: bearer(w.reader), body: 'hello', expect: [403] },
    { name: 'publish with a revoked token', target: 'manager', method: 'POST', path: '/api/publish', headers: bearer(w.revoked), body: 'hello', expect: [401] },
    { name: 'resolve private content without credentials', target: 'manager', method: 'GET', path: `/api/contents/${w.privateId}`, expect: [401, 403] },
    { name: 'resolve private content with an expired capability', target: 'manager', method: 'GET', path: `/api/contents/${w.privateId}`, headers: { 'x-cdn-capability': w.expiredCap }, expect: [403] },
    { name: 'resolve private content with a forged capability', target: 'manager', method: 'GET', path: `/api/contents/${w.privateId}`, headers: { 'x-cdn-capability': w.forgedCap }, expect: [403] },
    { name: 'resolve private content with garbage as capability', target: 'manager', method: 'GET', path: `/api/contents/${w.privateId}`, headers: { 'x-cdn-capability': '%%%' }, expect: [400, 403] },
    { name: 'resolve private content as another publisher', target: 'manager', method: 'GET', path: `/api/contents/${w.privateId}`, headers: bearer(w.publisherB), expect: [403] },
    { name: 'delete without a token', target: 'manager', method: 'DELETE', path: `/api/contents/${w.id}`, expect: [401] },
    { name: "delete another publisher's content", target: 'manager', method: 'DELETE', path: `/api/contents/${w.id}`, headers: bearer(w.publisherB), expect: [403] },
    { name: 'delete with a reader token', target: 'manager', method: 'DELETE', path: `/api/contents/${w.id}`, headers: bearer(w.reader), expect: [403] },
    { name: "share another publisher's content", target: 'manager', method: 'POST', path: `/api/contents/${w.privateId}/share`, headers: bearer(w.publisherB), body: '{}', expect: [403] },
    { name: 'share without a token', target: 'manager', method: 'POST', path: `/api/contents/${w.privateId}/share`, body: '{}', expect: [401] },
    { name: 'drain a node as a publisher', target: 'manager', method: 'POST', path: `/api/nodes/${w.node}/drain`, headers: pub, expect: [403] },
    { name: 'remove a node without a token', target: 'manager', method: 'DELETE', path: `/api/nodes/${w.node}`, expect: [401] },
    { name: 'remove a node as a publisher', target: 'manager', method: 'DELETE', path: `/api/nodes/${w.node}`, headers: pub, expect: [403] },
    { name: 'create a token as a publisher', target: 'manager', method: 'POST', path: '/api/tokens', headers: pub, body: '{"role":"admin","name":"x"}', expect: [403] },
    { name: 'list tokens without a token', target: 'manager', method: 'GET', path: '/api/tokens', expect: [401] },
    { name: 'revoke a token as a reader', target: 'manager', method: 'DELETE', path: '/api/tokens/0123456789ab', headers: bearer(w.reader), expect: [403] },
    // ---- manager: malformed input ------------------------------------------------------
    { name: 'resolve a malformed id', target: 'manager', method: 'GET', path: `/api/contents/${BAD_CID}`, expect: [400] },
    { name: 'resolve an over-long id', target: 'manager', method: 'GET', path: `/api/contents/${'b'.repeat(5000)}`, expect: [400, 414, 431] },
    { name: 'manifest of a malformed id', target: 'manager', method: 'GET', path: `/manifest/${BAD_CID}`, expect: [400] },
    { name: 'staging of a malformed id', target: 'manager', method: 'GET', path: `/staging/${BAD_CID}`, expect: [400] },
    { name: 'drain a malformed peer id', target: 'manager', method: 'POST', path: '/api/nodes/not-a-peer/drain', headers: admin, expect: [400] },
    { name: 'remove an unknown node', target: 'manager', method: 'DELETE', path: `/api/nodes/${FOREIGN_PEER}`, headers: admin, expect: [404] },
    { name: 'token with a bad role', target: 'manager', method: 'POST', path: '/api/tokens', headers: admin, body: '{"role":"god","name":"x"}', expect: [400] },
    { name: 'token with a body that is not JSON', target: 'manager', method: 'POST', path: '/api/tokens', headers: admin, body: '{"role":', expect: [400] },
    { name: 'token with a JSON array body', target: 'manager', method: 'POST', path: '/api/tokens', headers: admin, body: '[1,2]', expect: [400] },
    { name: 'share with a negative ttl', target: 'manager', method: 'POST', path: `/api/contents/${w.privateId}/share`, headers: admin, body: '{"ttlSeconds":-5}', expect: [400] },
    { name: 'publish with a bad ttl header', target: 'manager', method: 'POST', path: '/api/publish', headers: { ...pub, 'x-cdn-ttl': 'soon' }, body: 'x', expect: [400] },
    { name: 'publish with a control character in the name', target: 'manager', method: 'POST', path: '/api/publish', headers: { ...pub, 'x-cdn-name': '%07bell' }, body: 'x', expect: [400] },
    { name: 'publish with a bad media type', target: 'manager', method: 'POST', path: '/api/publish', headers: { ...pub, 'content-type': 'not a type' }, body: 'x', expect: [400] },
    { name: 'report that is not JSON', target: 'manager', method: 'POST', path: '/api/reports', body: 'nope', expect: [400] },
    { name: 'report of a foreign node', target: 'manager', method: 'POST', path: '/api/reports', body: JSON.stringify({ content: w.id, chunk: w.chunk, node: 'x' }), expect: [400] },
    { name: 'report of a chunk that is not the content\'s', target: 'manager', method: 'POST', path: '/api/reports', body: JSON.stringify({ content: w.id, chunk: w.privateId, node: w.node }), expect: [400, 404] },
    { name: 'events with a silly limit', target: 'manager', method: 'GET', path: '/api/events?limit=99999999', headers: admin, expect: [400] },
    { name: 'unknown route', target: 'manager', method: 'GET', path: '/etc/passwd', expect: [404] },
    { name: 'wrong method', target: 'manager', method: 'PUT', path: '/api/contents', headers: admin, expect: [405] },
    { name: 'Authorization that is not Bearer', target: 'manager', method: 'GET', path: '/api/contents', headers: { authorization: 'Basic YWRtaW46YWRtaW4=' }, expect: [401] },
    // ---- node data plane -------------------------------------------------------------
    { name: 'chunk with a malformed id', target: 'node', method: 'GET', path: `/chunk/${BAD_CID}`, expect: [400] },
    { name: 'chunk path traversal', target: 'node', method: 'GET', path: '/chunk/..%2F..%2Fpeer.key', expect: [400, 404] },
    { name: 'have-bitmap with a malformed id', target: 'node', method: 'GET', path: `/have/${BAD_CID}`, expect: [400] },
    { name: 'chunk with a body', target: 'node', method: 'GET', path: `/chunk/${w.chunk}`, body: 'unwanted', expect: [400, 'cut'] },
    { name: 'POST to a chunk', target: 'node', method: 'POST', path: `/chunk/${w.chunk}`, body: 'x', expect: [400, 405, 'cut'] },
    { name: 'unknown route on a node', target: 'node', method: 'GET', path: '/admin', expect: [404] },
    // ---- proxy: foreign Host / Origin, malformed input --------------------------------
    { name: 'dashboard under a rebinding Host', target: 'proxy', method: 'GET', path: '/', headers: { host: 'evil.example:8080' }, expect: [403, 421] },
    { name: 'content under a rebinding Host', target: 'proxy', method: 'GET', path: `/c/${w.id}`, headers: { host: 'evil.example' }, expect: [403, 421] },
    { name: 'dashboard data from a foreign Origin', target: 'proxy', method: 'GET', path: '/api/dashboard', headers: { origin: 'http://evil.example' }, expect: [403] },
    { name: 'dashboard events from a foreign Origin', target: 'proxy', method: 'GET', path: '/api/dashboard/events', headers: { origin: 'http://evil.example' }, expect: [403] },
    { name: 'dashboard data fetched cross-site', target: 'proxy', method: 'GET', path: '/api/dashboard', headers: { 'sec-fetch-site': 'cross-site' }, expect: [403] },
    { name: 'forward proxy to another host', target: 'proxy', method: 'GET', path: 'http://example.com/', headers: { host: 'example.com' }, expect: [403, 421] },
    { name: 'content with a malformed id', target: 'proxy', method: 'GET', path: `/c/${BAD_CID}`, expect: [400] },
    { name: 'content with an unsatisfiable range', target: 'proxy', method: 'GET', path: `/c/${w.id}`, headers: { range: 'bytes=999999999-' }, expect: [416] },
    { name: 'content with a garbage range', target: 'proxy', method: 'GET', path: `/c/${w.id}`, headers: { range: 'bytes=oops' }, expect: [200, 416] },
    { name: 'private content without a capability', target: 'proxy', method: 'GET', path: `/c/${w.privateId}`, expect: [403] },
    { name: 'private content with an expired capability', target: 'proxy', method: 'GET', path: `/c/${w.privateId}?cap=${w.expiredCap}`, expect: [403] },
    { name: 'private content with a forged capability', target: 'proxy', method: 'GET', path: `/c/${w.privateId}?cap=${w.forgedCap}`, expect: [403] },
    { name: 'content with a malformed key link', target: 'proxy', method: 'GET', path: `/c/${w.id}?k=short`, expect: [400] },
    { name: 'POST to the proxy', target: 'proxy', method: 'POST', path: `/c/${w.id}`, body: 'x', expect: [405] }
  ]
}

/**
 * Sends one raw HTTP/1.1 request and reads the status line. Raw, because the
 * attacks need what clients refuse to send (foreign Host headers, bodies on a
 * GET, absolute-form targets).
 */
async function send (base: string, a: Attack, deadlineMs = 20_000): Promise<Outcome> {
  const { hostname, port, host } = new URL(base)
  const headers: Record<string, string> = { host, connection: 'close', ...a.headers }
  if (a.body != null) headers['content-length'] = String(Buffer.byteLength(a.body))
  const head = `${a.method} ${a.path} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`
  return await new Promise<Outcome>((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    let got = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`${a.name}: no answer within ${deadlineMs} ms (a hang)`)) }, deadlineMs)
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1')
      const m = /^HTTP\/1\.1 (\d{3})/.exec(got)
      if (m != null) {
        clearTimeout(timer)
        socket.destroy()
        resolve(Number(m[1]))
      }
    })
    socket.on('error', () => {})
    socket.on('close', () => { clearTimeout(timer); resolve('cut') })
    socket.write(head + (a.body ?? ''))
  })
}

function allowed (o: Outcome, a: Attack): boolean {
  if (a.expect != null) return a.expect.includes(o)
  return typeof o === 'number' && o >= 400 && o < 500
}

/** Opens a body and stops sending: the server must cut the socket, not keep it forever. */
async function stalledBody (base: string, path: string, headers: Record<string, string>, deadlineMs = 90_000): Promise<number> {
  const { hostname, port, host } = new URL(base)
  const started = Date.now()
  return await new Promise<number>((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`${base}${path}: a stalled body still held the socket after ${deadlineMs} ms`)) }, deadlineMs)
    socket.on('error', () => {})
    // Whatever the server answers is read (and dropped), or its closing would never be seen.
    socket.resume()
    socket.on('close', () => { clearTimeout(timer); resolve(Date.now() - started) })
    const h = { host, 'content-length': '1000000', ...headers }
    socket.write(`POST ${path} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\nx`)
  })
}

let net: Network
let work: string
let world: World
let file: string

test.before(async () => {
  net = await startNetwork({ nodes: 3, extra: ['--chunk-size', '256KiB', '--replicas', '2'] })
  work = await tempDir('abuse')
  file = await randomFile(work, 'public.bin', 1024 * 1024)
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
  const priv = await cdnJson(['publish', await randomFile(work, 'private.bin', 300 * 1024), '--private', '--manager', net.manager, '--token-file', net.tokenFile])
  const resolved = (await getJson(`${net.manager}/api/contents/${pub.id}`)).body
  const { decodeManifest } = await import('../../core/manifest.ts')
  const manifest = decodeManifest(Buffer.from(resolved.manifest, 'base64'))
  const token = async (role: string): Promise<{ id: string, token: string }> => {
    const res = await fetch(`${net.manager}/api/tokens`, { method: 'POST', headers: { authorization: `Bearer ${net.adminToken}` }, body: JSON.stringify({ role, name: `abuse-${role}` }) })
    assert.is(res.status, 201)
    return await res.json() as any
  }
  const revoked = await token('publisher')
  assert.is((await fetch(`${net.manager}/api/tokens/${revoked.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${net.adminToken}` } })).status, 200)
  const share = async (ttlSeconds: number): Promise<string> => {
    const res = await fetch(`${net.manager}/api/contents/${priv.id}/share`, { method: 'POST', headers: { authorization: `Bearer ${net.token}` }, body: JSON.stringify({ ttlSeconds }) })
    assert.is(res.status, 201)
    return ((await res.json()) as any).capability
  }
  const expiredCap = await share(1)
  const good = await share(3600)
  // A capability for the private content, its body edited to live longer: the signature no longer matches.
  const [body, sig] = good.split('.')
  const longer = { ...JSON.parse(Buffer.from(body, 'base64url').toString()), exp: Date.now() + 10 * 365 * 86_400_000 }
  const forgedCap = `${Buffer.from(JSON.stringify(longer)).toString('base64url')}.${sig}`
  world = {
    net,
    id: pub.id,
    privateId: priv.id,
    chunk: String(manifest.chunks[0]),
    node: net.nodes[0].peerId,
    publisherB: (await token('publisher')).token,
    reader: (await token('reader')).token,
    revoked: revoked.token,
    expiredCap,
    forgedCap
  }
  // The short capability must be past its expiry before the table runs.
  await new Promise(resolve => setTimeout(resolve, 1500))
})

test.after(async () => {
  await net?.stop()
  if (work != null) await rm(work, { recursive: true, force: true })
})

test('every attack in the table gets a 4xx or a cut connection, never a 5xx or a hang', async () => {
  const bases: Record<Target, string> = { manager: net.manager, node: net.nodes[1].http, proxy: net.proxy }
  const wrong: string[] = []
  for (const a of attacks(world)) {
    const got = await send(bases[a.target], a)
    if (!allowed(got, a)) wrong.push(`${a.target}: ${a.name}: got ${got}, expected ${a.expect?.join(' or ') ?? '4xx'}`)
  }
  assert.equal(wrong, [])
})

test('stalled bodies are cut on every server', async () => {
  const cut = await Promise.all([
    stalledBody(net.manager, '/api/publish', { authorization: `Bearer ${net.token}` }),
    stalledBody(net.manager, '/api/reports', {}),
    stalledBody(net.nodes[1].http, `/chunk/${world.chunk}`, {}),
    stalledBody(net.proxy, `/c/${world.id}`, {})
  ])
  assert.is(cut.length, 4)
})

test('malformed control frames are refused, and strangers cannot give nodes orders', async () => {
  const stranger = await createHost({ privateKey: await generateKeyPair('Ed25519'), dhtServer: false })
  try {
    const exchange = async (addr: string, frame: Uint8Array): Promise<any> => {
      const { multiaddr } = await import('@multiformats/multiaddr')
      const stream = await stranger.dialProtocol(multiaddr(addr), CONTROL_PROTOCOL, { signal: AbortSignal.timeout(10_000) })
      stream.send(frame)
      await stream.close().catch(() => {})
      try {
        return await Promise.race([readFrame(stream), new Promise((_r, reject) => setTimeout(() => { reject(new Error('control stream hung')) }, 30_000))])
      } catch (err) {
        if (String(err).includes('hung')) throw err
        return { cut: true }
      }
    }
    const oversize = Buffer.alloc(4)
    oversize.writeUInt32BE(100 * 1024 * 1024)
    const notJson = Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('{{{{{')])
    const managerAddr = net.managerMultiaddr
    const nodeAddr = net.nodes[0].multiaddrs[0]
    const answers = {
      oversize: await exchange(managerAddr, oversize),
      notJson: await exchange(managerAddr, notJson),
      badJoin: await exchange(managerAddr, encodeFrame({ type: 'join', token: 'wrong', http: 'http://127.0.0.1:1', capacity: 1 })),
      unknownType: await exchange(managerAddr, encodeFrame({ type: 'gimme' })),
      strangerOrder: await exchange(nodeAddr, encodeFrame({ type: 'delete', blobs: [world.chunk], contents: [world.id] }))
    }
    for (const [what, a] of Object.entries(answers)) {
      assert.ok(a.cut === true || (a.type === 'error' && typeof a.code === 'string'), `${what}: ${JSON.stringify(a)}`)
    }
    assert.is(answers.badJoin.code, 'ERR_UNAUTHORIZED')
    assert.is(answers.strangerOrder.code, 'ERR_FORBIDDEN')
  } finally {
    await stranger.stop()
  }
})

test('afterwards every daemon still runs and nothing was lost', async () => {
  for (const pid of [net.managerPid, net.proxyPid, ...net.nodes.map(n => n.pid)]) process.kill(pid, 0)
  const nodes = (await getJson(`${net.manager}/api/nodes`, net.adminToken)).body.nodes as any[]
  assert.is(nodes.filter(n => n.state === 'alive').length, 3)
  const out = `${work}/again.bin`
  await eventually('the public content downloads intact', async () => {
    await cdnJson(['get', world.id, '-o', out, '--manager', net.manager])
    return await sha256File(out) === await sha256File(file)
  }, 60_000, 1000)
})

test.run()
