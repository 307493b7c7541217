/**
 * The proxy daemon as a browser sees it: real HTTP to `startProxy`, with a
 * stand-in manager and stand-in nodes behind it.
 */
import { request } from 'node:http'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { encodeKey } from '../../../core/chunk-crypto.ts'
import { silentLogger } from '../../../core/log.ts'
import { startProxy, type ProxyDaemon } from '../../../proxy/daemon.ts'
import {
  eventually, makeContent, makeSigner, startStandInManager, startStandInNode,
  type Signer, type StandInManager, type StandInNode, type TestContent
} from '../proxy-standins.ts'

interface Ctx {
  signer: Signer
  manager: StandInManager
  nodes: StandInNode[]
  proxy: ProxyDaemon
  content: TestContent
}

const test = suite<Ctx>('proxy daemon')
const CHUNK = 64 * 1024
const SIZE = 20 * CHUNK + 777

test.before.each(async (ctx) => {
  ctx.signer = await makeSigner()
  ctx.manager = await startStandInManager(ctx.signer)
  ctx.nodes = [await startStandInNode(), await startStandInNode()]
  ctx.content = await makeContent({ size: SIZE, chunkSize: CHUNK, signer: ctx.signer, name: 'my clip "final".webm', type: 'video/webm' })
  for (const n of ctx.nodes) n.hold(ctx.content)
  ctx.manager.publish(ctx.content, ctx.nodes)
  ctx.proxy = await startProxy({ managerUrl: ctx.manager.url, httpPort: 0, logger: silentLogger() })
})

test.after.each(async (ctx) => {
  await ctx.proxy.stop()
  for (const n of ctx.nodes) await n.close()
  await ctx.manager.close()
})

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

async function call (url: string, init: { method?: string, headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await fetch(url, { method: init.method ?? 'GET', headers: init.headers })
  const headers: Record<string, string> = {}
  res.headers.forEach((v, k) => { headers[k] = v })
  return { status: res.status, headers, body: Buffer.from(await res.arrayBuffer()) }
}

function chunkRequests (ctx: Ctx): number {
  return ctx.nodes.reduce((n, node) => n + node.requests.length, 0)
}

test('GET /c/<id> streams the whole content with its headers', async (ctx) => {
  const r = await call(`${ctx.proxy.http}/c/${ctx.content.id}`)
  assert.is(r.status, 200)
  assert.ok(r.body.equals(ctx.content.plaintext), 'byte-identical')
  assert.is(r.headers['content-type'], 'video/webm')
  assert.is(r.headers['content-length'], String(SIZE))
  assert.is(r.headers.etag, `"${ctx.content.id}"`)
  assert.match(String(r.headers['content-disposition']), /filename\*=UTF-8''my%20clip%20%22final%22\.webm/)
  // A file name after the id is allowed (nicer downloads) and ignored.
  const named = await call(`${ctx.proxy.http}/c/${ctx.content.id}/clip.webm`)
  assert.is(named.status, 200)
  assert.ok(named.body.equals(ctx.content.plaintext))
})

test('HEAD /c/<id> gives the same headers without fetching a chunk', async (ctx) => {
  const r = await call(`${ctx.proxy.http}/c/${ctx.content.id}`, { method: 'HEAD' })
  assert.is(r.status, 200)
  assert.is(r.headers['content-type'], 'video/webm')
  assert.is(r.headers['content-length'], String(SIZE))
  assert.is(r.headers.etag, `"${ctx.content.id}"`)
  assert.is(r.body.length, 0)
  assert.is(chunkRequests(ctx), 0)
})

test('a matching If-None-Match is answered 304', async (ctx) => {
  const r = await call(`${ctx.proxy.http}/c/${ctx.content.id}`, { headers: { 'if-none-match': `"${ctx.content.id}"` } })
  assert.is(r.status, 304)
  assert.is(chunkRequests(ctx), 0)
})

test('malformed ids are 400, unknown contents 404, with a JSON message', async (ctx) => {
  for (const bad of ['not-a-cid', ctx.content.chunkIds[0], '%ZZ']) {
    const r = await call(`${ctx.proxy.http}/c/${bad}`)
    assert.is(r.status, 400, bad)
    assert.is(JSON.parse(r.body.toString()).error.code, 'ERR_BAD_INPUT')
  }
  const other = await makeContent({ size: 10, chunkSize: 1024, signer: ctx.signer })
  const missing = await call(`${ctx.proxy.http}/c/${other.id}`)
  assert.is(missing.status, 404)
  assert.match(JSON.parse(missing.body.toString()).error.message, /unknown content/)
  const bogusKey = await call(`${ctx.proxy.http}/c/${ctx.content.id}?k=short`)
  assert.is(bogusKey.status, 400)
})

test('502 with a message when no source can serve the content', async (ctx) => {
  for (const n of ctx.nodes) n.faults.set(ctx.content.chunkIds[0], 'fail')
  const r = await call(`${ctx.proxy.http}/c/${ctx.content.id}`)
  assert.is(r.status, 502)
  const error = JSON.parse(r.body.toString()).error
  assert.is(error.code, 'ERR_NO_SOURCE')
  assert.match(error.message, /chunk 0/)
  // The failure is not sticky: once the nodes recover, the content is served.
  for (const n of ctx.nodes) n.faults.clear()
  const again = await call(`${ctx.proxy.http}/c/${ctx.content.id}`)
  assert.is(again.status, 200)
  assert.ok(again.body.equals(ctx.content.plaintext))
})

test('a capability key in the query is used instead of the manager\'s', async (ctx) => {
  const r = await call(`${ctx.proxy.http}/c/${ctx.content.id}?k=${encodeKey(ctx.content.key)}`)
  assert.is(r.status, 200)
  assert.ok(r.body.equals(ctx.content.plaintext))
  const wrong = await call(`${ctx.proxy.http}/c/${ctx.content.id}?k=${encodeKey(new Uint8Array(32))}`)
  assert.is(wrong.status, 502)
  assert.is(JSON.parse(wrong.body.toString()).error.code, 'ERR_DECRYPT')
})

test('a browser that goes away mid-stream cancels the fetching', async (ctx) => {
  for (const n of ctx.nodes) for (const cid of ctx.content.chunkIds.slice(3)) n.faults.set(cid, 'stall')
  await new Promise<void>((resolve, reject) => {
    const req = request(`${ctx.proxy.http}/c/${ctx.content.id}`, (res) => {
      res.once('data', () => {
        req.destroy()
        resolve()
      })
    })
    req.on('error', (err) => { if (!req.destroyed) reject(err) })
    req.end()
  })
  await eventually(() => ctx.nodes.some(n => n.requests.length > 3), 'stalled chunks requested')
  await eventually(() => ctx.nodes.every(n => n.open === 0), 'stalled requests cancelled by the proxy')
  // The proxy is still fine.
  const health = await call(`${ctx.proxy.http}/health`)
  assert.is(health.status, 200)
})

test('/metrics, other methods and other paths', async (ctx) => {
  await call(`${ctx.proxy.http}/c/${ctx.content.id}`)
  const m = await call(`${ctx.proxy.http}/metrics`)
  assert.is(m.status, 200)
  const text = m.body.toString()
  assert.match(text, /cdn_proxy_chunk_requests_total\{result="ok",role="proxy"\} 21/)
  assert.match(text, new RegExp(`cdn_proxy_served_bytes_total\\{role="proxy"\\} ${SIZE}`))
  assert.match(text, /cdn_proxy_http_requests_total\{route="content",status="200",role="proxy"\} 1/)
  const post = await call(`${ctx.proxy.http}/c/${ctx.content.id}`, { method: 'POST' })
  assert.is(post.status, 405)
  assert.is(post.headers.allow, 'GET, HEAD')
  const nowhere = await call(`${ctx.proxy.http}/nothing-here`)
  assert.is(nowhere.status, 404)
})

test.run()
