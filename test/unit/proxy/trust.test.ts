/**
 * The localhost proxy serves this machine only, and keeps capabilities to
 * itself: real HTTP to `startProxy` with a stand-in manager and nodes behind
 * it. Foreign Host names (DNS rebinding) and other origins are refused; the
 * PAC file does not depend on the Host; `?cap=` reaches the manager only as a
 * header, its refusals become 403s, and neither the capability nor the key
 * ever appears in a log line or a file the proxy writes.
 */
import { readdir, readFile, rm, mkdtemp } from 'node:fs/promises'
import type { IncomingMessage } from 'node:http'
import { request } from 'node:http'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeKey } from '../../../core/chunk-crypto.ts'
import { silentLogger } from '../../../core/log.ts'
import { startProxy, type ProxyDaemon } from '../../../proxy/daemon.ts'
import { addressedTo, pacAddress } from '../../../proxy/http/request-guard.ts'
import {
  eventually, makeContent, makeSigner, startStandInManager, startStandInNode,
  type Signer, type StandInManager, type StandInNode, type TestContent
} from '../proxy-standins.ts'

// ---- whom requests are addressed to (pure) -----------------------------------

const guard = suite('request guard')

function req (url: string, host?: string): IncomingMessage {
  return { url, headers: host == null ? {} : { host } } as unknown as IncomingMessage
}

const ID = 'bagaaierajp2relzuivkmko66f25yzuvx4piwacwwghbyljoxztrdy54fiwna'

guard('Host names the proxy answers to, for each listen address', () => {
  const cases: Array<[listen: string, url: string, host: string | undefined, kind: string]> = [
    ['127.0.0.1', '/', '127.0.0.1:8080', 'own'],
    ['127.0.0.1', '/', '127.0.0.1', 'own'],
    ['127.0.0.1', '/', 'localhost:8080', 'own'],
    ['127.0.0.1', '/', 'LocalHost.:8080', 'own'],
    ['127.0.0.1', '/', '[::1]:8080', 'own'],
    ['127.0.0.1', '/', 'evil.example:8080', 'foreign'],
    ['127.0.0.1', '/', '127.0.0.1.evil.example', 'foreign'],
    ['127.0.0.1', '/', 'localhost.evil.example', 'foreign'],
    ['127.0.0.1', '/', '10.0.0.5:8080', 'foreign'],
    ['127.0.0.1', '/', undefined, 'foreign'],
    ['127.0.0.1', '/', '', 'foreign'],
    ['127.0.0.1', '/', 'a:b:c', 'foreign'],
    ['127.0.0.1', '/', `${ID}.cdn:8080`, 'content'],
    ['127.0.0.1', '/', `${ID}.CDN`, 'content'],
    ['127.0.0.1', '/', '.cdn', 'foreign'],
    ['127.0.0.1', `http://${ID}.cdn/movie.webm`, 'ignored.example', 'content'],
    ['127.0.0.1', 'http://example.com/', 'example.com', 'foreign'],
    // Absolute form is only ever the browser's proxy use of the suffix.
    ['127.0.0.1', 'http://127.0.0.1:8080/api/dashboard', '127.0.0.1:8080', 'foreign'],
    ['192.168.1.20', '/', '192.168.1.20:8080', 'own'],
    ['192.168.1.20', '/', '192.168.1.21:8080', 'foreign'],
    ['proxy.lan', '/', 'proxy.lan:8080', 'own'],
    ['::1', '/', '[::1]:8080', 'own'],
    // Listening everywhere: reached by this machine's addresses; an IP literal cannot be rebound.
    ['0.0.0.0', '/', '192.168.1.20:8080', 'own'],
    ['0.0.0.0', '/', '[fe80::1]:8080', 'own'],
    ['0.0.0.0', '/', 'evil.example:8080', 'foreign'],
    ['::', '/', '10.1.2.3', 'own']
  ]
  for (const [listen, url, host, kind] of cases) {
    assert.is(addressedTo(req(url, host), { listenHost: listen, suffix: 'cdn' }).kind, kind, `${listen}: ${url} Host ${String(host)}`)
  }
})

guard('the PAC file points at the listen address, loopback for a wildcard', () => {
  assert.is(pacAddress('127.0.0.1', 8080), '127.0.0.1:8080')
  assert.is(pacAddress('::1', 8080), '[::1]:8080')
  assert.is(pacAddress('0.0.0.0', 9000), '127.0.0.1:9000')
  assert.is(pacAddress('proxy.lan', 9000), 'proxy.lan:9000')
})

guard.run()

// ---- a running proxy ------------------------------------------------------------

interface Ctx {
  dir: string
  signer: Signer
  manager: StandInManager
  nodes: StandInNode[]
  proxy: ProxyDaemon
  port: number
  logs: string[]
  content: TestContent
  secret: TestContent
  capability: string
}

const test = suite<Ctx>('proxy trust')
const CHUNK = 32 * 1024

test.before(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'cdn-proxy-trust-'))
  ctx.signer = await makeSigner()
  ctx.manager = await startStandInManager(ctx.signer)
  ctx.nodes = [await startStandInNode(), await startStandInNode()]
  ctx.content = await makeContent({ size: 6 * CHUNK + 5, chunkSize: CHUNK, signer: ctx.signer, name: 'public.bin' })
  ctx.secret = await makeContent({ size: 5 * CHUNK + 9, chunkSize: CHUNK, signer: ctx.signer, name: 'secret.webm', type: 'video/webm' })
  // The shape of a real one: a signed record's two base64url parts.
  ctx.capability = `${Buffer.from('{"kind":"capability","content":"x"}').toString('base64url')}.${Buffer.from('a-signature-of-64-bytes-that-nobody-checks-in-this-stand-in!!!!!').toString('base64url')}`
  for (const n of ctx.nodes) {
    n.hold(ctx.content)
    n.hold(ctx.secret)
  }
  ctx.manager.publish(ctx.content, ctx.nodes)
  ctx.manager.publish(ctx.secret, ctx.nodes, { private: true, capability: ctx.capability })
  ctx.logs = []
  const sink = new Writable({ write (chunk, _enc, done) { ctx.logs.push(String(chunk)); done() } })
  ctx.proxy = await startProxy({
    managerUrl: ctx.manager.url,
    httpPort: 0,
    stateDir: join(ctx.dir, 'state'),
    cacheDir: join(ctx.dir, 'cache'),
    logger: pino({ level: 'trace' }, sink)
  })
  ctx.port = Number(new URL(ctx.proxy.http).port)
})

test.after(async (ctx) => {
  await ctx.proxy?.stop()
  for (const n of ctx.nodes ?? []) await n.close()
  await ctx.manager?.close()
  await rm(ctx.dir, { recursive: true, force: true })
})

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

/** One request with exactly these headers (fetch would not let a test choose the Host). */
async function raw (ctx: Ctx, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port: ctx.port, path, method, headers: { host: `127.0.0.1:${ctx.port}`, ...headers } }, (res) => {
      const parts: Buffer[] = []
      // An event stream never ends: its first event is all a test needs.
      const sse = String(res.headers['content-type']).startsWith('text/event-stream')
      res.on('data', (d: Buffer) => {
        parts.push(d)
        if (sse) res.destroy()
      })
      const done = (): void => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }) }
      res.on('end', done)
      res.on('close', done)
    })
    r.on('error', reject)
    r.end()
  })
}

test('the proxy\'s own names are served; foreign names get 421 on every route, and <id>.cdn only its content', async (ctx) => {
  const own = [`127.0.0.1:${ctx.port}`, `localhost:${ctx.port}`, 'localhost', `[::1]:${ctx.port}`]
  for (const host of own) {
    assert.is((await raw(ctx, '/health', { host })).status, 200, host)
    assert.is((await raw(ctx, '/api/dashboard', { host })).status, 200, host)
  }
  for (const host of [`evil.example:${ctx.port}`, 'evil.example', `127.0.0.1.nip.example:${ctx.port}`, `localhost.evil.example:${ctx.port}`]) {
    for (const path of ['/', '/api/dashboard', '/api/dashboard/events', `/c/${ctx.content.id}`, '/proxy.pac', '/metrics', `/play/${ctx.content.id}`]) {
      const r = await raw(ctx, path, { host })
      assert.is(r.status, 421, `${host} ${path}`)
      assert.is(JSON.parse(r.body.toString()).error.code, 'ERR_MISDIRECTED')
    }
  }
  // A page at <id>.cdn reaches that content, whatever path it asks for: never the dashboard.
  const asContent = await raw(ctx, '/api/dashboard', { host: `${ctx.content.id}.cdn` })
  assert.is(asContent.status, 200)
  assert.ok(asContent.body.equals(ctx.content.plaintext))
  assert.is((await raw(ctx, '/', { host: 'not-an-id.cdn' })).status, 400)
  // As an HTTP proxy: only the suffix.
  assert.is((await raw(ctx, `http://${ctx.content.id}.cdn/`, { host: `${ctx.content.id}.cdn` })).status, 200)
  assert.is((await raw(ctx, 'http://example.com/', { host: 'example.com' })).status, 403)
})

test('the dashboard API and its event stream refuse other origins', async (ctx) => {
  const own = `http://127.0.0.1:${ctx.port}`
  const refused: Array<Record<string, string>> = [
    { origin: 'http://evil.example' },
    { origin: 'null' },
    { origin: `http://localhost:${ctx.port + 1}`, host: `localhost:${ctx.port}` },
    { origin: `https://127.0.0.1:${ctx.port}` },
    { 'sec-fetch-site': 'cross-site' },
    { 'sec-fetch-site': 'same-site' },
    { origin: own, 'sec-fetch-site': 'cross-site' }
  ]
  for (const path of ['/api/dashboard', '/api/dashboard/events']) {
    for (const headers of refused) {
      const r = await raw(ctx, path, headers)
      assert.is(r.status, 403, `${path} ${JSON.stringify(headers)}`)
      assert.not.match(r.body.toString(), /downloads/)
    }
    const allowed: Array<Record<string, string>> = [{}, { origin: own }, { origin: own, 'sec-fetch-site': 'same-origin' }, { 'sec-fetch-site': 'none' }, { origin: `http://localhost:${ctx.port}`, host: `localhost:${ctx.port}` }]
    for (const headers of allowed) {
      const r = await raw(ctx, path, headers)
      assert.is(r.status, 200, `${path} ${JSON.stringify(headers)}`)
      assert.match(r.body.toString(), /downloads/)
    }
  }
})

test('/proxy.pac is the same whatever Host the request names', async (ctx) => {
  const bodies = new Set<string>()
  for (const host of [`127.0.0.1:${ctx.port}`, `localhost:${ctx.port}`, 'localhost:1', `[::1]:${ctx.port}`]) {
    const r = await raw(ctx, '/proxy.pac', { host })
    assert.is(r.status, 200)
    bodies.add(r.body.toString())
  }
  assert.is(bodies.size, 1)
  assert.match([...bodies][0], new RegExp(`PROXY 127\\.0\\.0\\.1:${ctx.port}"`))
})

test('?cap= opens a private content: the manager gets it as a header only, and the player passes it on', async (ctx) => {
  const before = ctx.manager.capabilities.length
  const r = await raw(ctx, `/c/${ctx.secret.id}?cap=${ctx.capability}`)
  assert.is(r.status, 200)
  assert.ok(r.body.equals(ctx.secret.plaintext))
  assert.ok(ctx.manager.capabilities.slice(before).includes(ctx.capability), 'the manager saw the capability header')
  const range = await raw(ctx, `/c/${ctx.secret.id}?cap=${ctx.capability}`, { range: `bytes=${CHUNK}-${CHUNK + 9}` })
  assert.is(range.status, 206)
  assert.ok(range.body.equals(ctx.secret.plaintext.subarray(CHUNK, CHUNK + 10)))
  const page = await raw(ctx, `/play/${ctx.secret.id}?cap=${ctx.capability}`)
  assert.is(page.status, 200)
  assert.match(page.body.toString(), `src="/c/${ctx.secret.id}?cap=${ctx.capability}"`)
  assert.is(page.headers['referrer-policy'], 'no-referrer')
})

test('a manager refusal is a 403 with a clear message; a malformed capability is a 400 and reaches nobody', async (ctx) => {
  // Resolved a moment ago with the capability: that resolution is not handed to a request without it.
  const without = await raw(ctx, `/c/${ctx.secret.id}`)
  assert.is(without.status, 403, 'the manager\'s 401 is the proxy\'s 403')
  assert.match(JSON.parse(without.body.toString()).error.message, /capability/)
  const wrong = await raw(ctx, `/c/${ctx.secret.id}?cap=${ctx.capability.slice(0, -4)}AAAA`)
  assert.is(wrong.status, 403)
  assert.match(JSON.parse(wrong.body.toString()).error.message, /refused.*expired or not for this content/)
  const asked = ctx.manager.capabilities.length
  for (const bad of ['%0d%0ax-evil:%201', 'no-dot', 'a.b.c', 'x'.repeat(5000) + '.y']) {
    const r = await raw(ctx, `/c/${ctx.secret.id}?cap=${bad}`)
    assert.is(r.status, 400, bad.slice(0, 20))
    assert.not.match(r.body.toString(), bad.slice(0, 20))
  }
  assert.is(ctx.manager.capabilities.length, asked)
  assert.is((await raw(ctx, `/play/${ctx.secret.id}?cap=no-dot`)).status, 400)
})

test('a key link still opens the private content (the manager is only asked, never needed)', async (ctx) => {
  const r = await raw(ctx, `/c/${ctx.secret.id}?k=${encodeKey(ctx.secret.key)}`)
  assert.is(r.status, 200)
  assert.ok(r.body.equals(ctx.secret.plaintext))
})

test('neither the capability nor a key is in any log line, in the dashboard, or in a file the proxy wrote', async (ctx) => {
  await raw(ctx, `/c/${ctx.secret.id}?cap=${ctx.capability}`)
  await raw(ctx, `/c/${ctx.secret.id}?cap=${ctx.capability}&k=${encodeKey(ctx.secret.key)}`)
  const dash = (await raw(ctx, '/api/dashboard')).body.toString()
  await eventually(() => ctx.logs.length > 0, 'the proxy logged')
  const secrets = [ctx.capability, ctx.capability.split('.')[1], encodeKey(ctx.secret.key), encodeKey(ctx.content.key), Buffer.from(ctx.secret.key).toString('hex'), Buffer.from(ctx.secret.key).toString('base64')]
  const logs = ctx.logs.join('')
  assert.match(logs, /"level":20/, 'debug and trace lines are included')
  for (const s of secrets) {
    assert.not.ok(logs.includes(s), 'a secret in the logs')
    assert.not.ok(dash.includes(s), 'a secret in the dashboard')
  }
  assert.not.match(logs, /[?&](cap|k)=[A-Za-z0-9_-]/, 'no query string is logged')
  // What the proxy keeps on disk: the state directory and the (ciphertext) cache.
  await ctx.proxy.stop()
  const files = await walk(ctx.dir)
  assert.ok(files.some(f => f.endsWith('node-list.json')), 'the node list is kept')
  assert.ok(files.some(f => f.endsWith('network.json')), 'the network state is kept')
  for (const f of files) {
    const bytes = await readFile(f)
    for (const s of secrets) assert.not.ok(bytes.includes(s), `${f} holds a secret`)
    assert.not.ok(bytes.includes(Buffer.from(ctx.secret.key)), `${f} holds the raw key`)
  }
})

async function walk (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...await walk(p))
    else out.push(p)
  }
  return out
}

test.run()

// ---- a daemon whose limits hold ---------------------------------------------------

const limits = suite('proxy server limits')

interface Conn { socket: Socket, received: Promise<string> }

/** A raw connection whose whole answer (until the server closes it) is collected from the start. */
async function connect (url: URL): Promise<Conn> {
  return await new Promise((resolve, reject) => {
    const socket = new Socket()
    let got = ''
    const received = new Promise<string>((done) => { socket.on('close', () => { done(got) }) })
    socket.on('data', (d: Buffer) => { got += d.toString() })
    socket.connect(Number(url.port), url.hostname, () => { resolve({ socket, received }) })
    socket.on('error', reject)
  })
}

async function exchange (c: Conn, text: string): Promise<string> {
  if (!c.socket.destroyed) c.socket.write(text)
  return await c.received
}

limits('a browser\'s many connections are all served', async () => {
  const manager = await startStandInManager(await makeSigner())
  const proxy = await startProxy({ managerUrl: manager.url, httpPort: 0, logger: silentLogger() })
  const url = new URL(proxy.http)
  const sockets: Conn[] = []
  try {
    // More than a daemon serving strangers allows one client (64), all open at once.
    for (let i = 0; i < 100; i++) sockets.push(await connect(url))
    const answers = await Promise.all(sockets.map(async (s) => await exchange(s, `GET /health HTTP/1.1\r\nHost: 127.0.0.1:${url.port}\r\nConnection: close\r\n\r\n`)))
    for (const a of answers) assert.match(a, /^HTTP\/1\.1 200/)
  } finally {
    for (const c of sockets) c.socket.destroy()
    await proxy.stop()
    await manager.close()
  }
})

limits('a client that never finishes its request headers is cut', async () => {
  const manager = await startStandInManager(await makeSigner())
  const proxy = await startProxy({ managerUrl: manager.url, httpPort: 0, logger: silentLogger(), httpLimits: { headersTimeout: 500 } })
  try {
    const s = await connect(new URL(proxy.http))
    const got = await exchange(s, 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    assert.match(got, /^HTTP\/1\.1 408/)
  } finally {
    await proxy.stop()
    await manager.close()
  }
})

limits.run()
