/**
 * The proxy as browsers and players see it, on a real network (`cdn up`):
 * HTTP semantics (Range, conditional requests, HEAD) checked against the
 * exact bytes, the PAC file and the forward-proxy host, the dashboard, a
 * corrupt copy served correctly, and the cache replaying with the nodes gone.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { request } from 'node:http'
import { open, readFile, rm } from 'node:fs/promises'
import { runInNewContext } from 'node:vm'
import { decodeManifest } from '../../core/manifest.ts'
import { blobFiles, cdnJson, eventually, getJson, randomFile, startNetwork, tempDir, type Network } from './harness.ts'

const CHUNK = 64 * 1024
const test = suite<{ net: Network, dir: string, contents: Map<string, { id: string, bytes: Buffer }> }>('proxy over HTTP')

test.before(async (ctx) => {
  ctx.net = await startNetwork({ nodes: 3, extra: ['--chunk-size', '64KiB'] })
  ctx.dir = await tempDir('proxy-http')
  ctx.contents = new Map()
  // Sizes: a multiple of the chunk size, not a multiple, one byte, zero bytes.
  for (const [label, size] of [['aligned', 4 * CHUNK], ['ragged', 4 * CHUNK + 1000], ['one', 1], ['empty', 0]] as const) {
    const file = await randomFile(ctx.dir, `${label}.bin`, size)
    const pub = await cdnJson(['publish', file, '--manager', ctx.net.manager, '--token-file', ctx.net.tokenFile, '--type', 'video/webm'])
    ctx.contents.set(label, { id: pub.id, bytes: await readFile(file) })
  }
})

test.after(async (ctx) => {
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

interface Answer { status: number, headers: Record<string, string>, body: Buffer }

async function call (url: string, method = 'GET', headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, { method, headers })
  const h: Record<string, string> = {}
  res.headers.forEach((v, k) => { h[k] = v })
  return { status: res.status, headers: h, body: Buffer.from(await res.arrayBuffer()) }
}

interface Case { name: string, method?: string, headers?: (etag: string) => Record<string, string>, status: number, range?: (size: number) => [number, number] | null }

/** Expected outcome per size: `range` gives the inclusive byte span served, or null for a full 200. */
function cases (size: number): Case[] {
  const all: Case[] = [
    { name: 'plain GET', status: 200 },
    { name: 'HEAD', method: 'HEAD', status: 200 },
    { name: 'If-None-Match with our tag', headers: e => ({ 'if-none-match': e }), status: 304 },
    { name: 'If-None-Match with another tag', headers: () => ({ 'if-none-match': '"nope"' }), status: 200 },
    { name: 'If-Match with another tag', headers: () => ({ 'if-match': '"nope"' }), status: 412 },
    { name: 'two ranges: whole content', headers: () => ({ range: 'bytes=0-0,2-3' }), status: 200 },
    { name: 'malformed range', headers: () => ({ range: 'bytes=abc' }), status: 416 },
    { name: 'range past the end', headers: () => ({ range: `bytes=${size}-` }), status: 416 },
    { name: 'If-Range with another tag ignores the range', headers: () => ({ range: 'bytes=0-0', 'if-range': '"old"' }), status: 200 }
  ]
  if (size >= 1) {
    all.push(
      { name: 'first byte', headers: () => ({ range: 'bytes=0-0' }), status: 206, range: () => [0, 0] },
      { name: 'suffix longer than the content', headers: () => ({ range: 'bytes=-999999' }), status: 206, range: s => [0, s - 1] },
      { name: 'If-Range with our tag keeps the range', headers: e => ({ range: 'bytes=0-0', 'if-range': e }), status: 206, range: () => [0, 0] },
      { name: 'HEAD with a range', method: 'HEAD', headers: () => ({ range: 'bytes=0-0' }), status: 206, range: () => [0, 0] }
    )
  }
  if (size > 2 * CHUNK) {
    all.push(
      { name: 'across a chunk boundary', headers: () => ({ range: `bytes=${CHUNK - 10}-${CHUNK + 9}` }), status: 206, range: () => [CHUNK - 10, CHUNK + 9] },
      { name: 'open-ended from the middle', headers: () => ({ range: `bytes=${CHUNK + 123}-` }), status: 206, range: s => [CHUNK + 123, s - 1] },
      { name: 'last 100 bytes', headers: () => ({ range: 'bytes=-100' }), status: 206, range: s => [s - 100, s - 1] },
      { name: 'end clamped to the size', headers: () => ({ range: `bytes=${2 * CHUNK}-${size * 2}` }), status: 206, range: s => [2 * CHUNK, s - 1] },
      { name: 'exactly the second chunk', headers: () => ({ range: `bytes=${CHUNK}-${2 * CHUNK - 1}` }), status: 206, range: () => [CHUNK, 2 * CHUNK - 1] }
    )
  }
  return all
}

test('Range and conditional requests give the right status, headers and exact bytes', async ({ net, contents }) => {
  for (const [label, { id, bytes }] of contents) {
    const size = bytes.length
    const etag = `"${id}"`
    for (const c of cases(size)) {
      const what = `${label} (${size} B): ${c.name}`
      const r = await call(`${net.proxy}/c/${id}`, c.method, c.headers?.(etag) ?? {})
      assert.is(r.status, c.status, what)
      if (c.status === 304) {
        assert.is(r.headers.etag, etag, what)
        assert.is(r.body.length, 0, what)
        continue
      }
      if (c.status === 412) continue
      if (c.status === 416) {
        assert.is(r.headers['content-range'], `bytes */${size}`, what)
        continue
      }
      assert.is(r.headers['accept-ranges'], 'bytes', what)
      assert.is(r.headers.etag, etag, what)
      assert.is(r.headers['content-type'], 'video/webm', what)
      const span = c.range?.(size) ?? null
      const want = span == null ? bytes : bytes.subarray(span[0], span[1] + 1)
      assert.is(r.headers['content-length'], String(want.length), what)
      if (span != null) assert.is(r.headers['content-range'], `bytes ${span[0]}-${span[1]}/${size}`, what)
      if (c.method === 'HEAD') assert.is(r.body.length, 0, what)
      else assert.ok(r.body.equals(want), `${what}: exact bytes`)
    }
  }
})

test('malformed and unknown ids get 400 and 404 with a message', async ({ net }) => {
  const bad = await call(`${net.proxy}/c/not-a-cid`)
  assert.is(bad.status, 400)
  assert.ok(JSON.parse(bad.body.toString()).error.message)
  const unknown = await call(`${net.proxy}/c/bagaaierajp2relzuivkmko66f25yzuvx4piwacwwghbyljoxztrdy54fiwna`)
  assert.is(unknown.status, 404)
  const chunkId = await call(`${net.proxy}/c/bafkreicmwjl6szt7jgc7jhssxzsmpyquel2lhvudstl4u2runoxp5u3hcq`)
  assert.is(chunkId.status, 400)
})

test('the PAC file routes exactly the suffix through the proxy, and the proxy serves <id>.cdn', async ({ net, contents }) => {
  const { id, bytes } = contents.get('ragged')!
  const pac = await call(`${net.proxy}/proxy.pac`)
  assert.is(pac.status, 200)
  assert.match(pac.headers['content-type'], /application\/x-ns-proxy-autoconfig/)
  const proxyHostPort = new URL(net.proxy).host
  const decide = (url: string, host: string): string => runInNewContext(`${pac.body.toString()}; FindProxyForURL(${JSON.stringify(url)}, ${JSON.stringify(host)})`, {
    dnsDomainIs: (h: string, d: string) => h.endsWith(d)
  })
  assert.is(decide(`http://${id}.cdn/`, `${id}.cdn`), `PROXY ${proxyHostPort}`)
  assert.is(decide('http://example.com/', 'example.com'), 'DIRECT')
  assert.is(decide('http://cdn/', 'cdn'), 'DIRECT')
  assert.is(decide('http://notcdn.org/', 'notcdn.org'), 'DIRECT')

  // What a browser configured with that PAC sends: an absolute URL to the proxy.
  const viaProxy = (target: string): Promise<Answer> => new Promise((resolve, reject) => {
    const u = new URL(net.proxy)
    const req = request({ host: u.hostname, port: u.port, path: target, headers: { host: new URL(target).host } }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => parts.push(d))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, string>, body: Buffer.concat(parts) }) })
    })
    req.on('error', reject)
    req.end()
  })
  const served = await viaProxy(`http://${id}.cdn/`)
  assert.is(served.status, 200)
  assert.ok(served.body.equals(bytes))
  const named = await viaProxy(`http://${id}.cdn/movie.webm`)
  assert.ok(named.body.equals(bytes))
  const foreign = await viaProxy('http://example.com/')
  assert.is(foreign.status, 403, 'not an open proxy')
})

test('the dashboard page and its live feed show downloads, sources and cache use', async ({ net, contents }) => {
  const page = await call(`${net.proxy}/`)
  assert.is(page.status, 200)
  assert.match(page.body.toString(), /EventSource\('\/api\/dashboard\/events'\)/)
  const { id } = contents.get('aligned')!
  await call(`${net.proxy}/c/${id}`)
  const ac = new AbortController()
  const res = await fetch(`${net.proxy}/api/dashboard/events`, { signal: ac.signal })
  assert.match(String(res.headers.get('content-type')), /text\/event-stream/)
  const reader = res.body!.getReader()
  let text = ''
  while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value)
  ac.abort()
  const snap = JSON.parse(text.slice(text.indexOf('data: ') + 6, text.indexOf('\n\n')))
  const done = snap.downloads.recent.find((d: any) => d.id === id)
  assert.ok(done, 'the finished download is listed')
  assert.is(done.state, 'done')
  assert.ok(Object.keys(done.sources).length >= 1)
  assert.ok(snap.sources.length >= 1)
  assert.ok(snap.cache.entries >= 4)
  const player = await call(`${net.proxy}/play/${id}`)
  assert.match(player.body.toString(), new RegExp(`<video[^>]+src="/c/${id}"`))
})

test('a corrupt copy on one node is served correctly and reported', async ({ net, dir }) => {
  const file = await randomFile(dir, 'corrupt.bin', 20 * CHUNK + 5)
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
  const r = await getJson(`${net.manager}/api/contents/${pub.id}`)
  const chunks = decodeManifest(Buffer.from(r.body.manifest, 'base64')).chunks
  const node = net.nodes[0]
  const files = await blobFiles(node.data)
  let corrupted = 0
  for (const c of chunks) {
    const path = files.get(c)
    if (path == null) continue
    const fh = await open(path, 'r+')
    await fh.write(Buffer.from('rot'), 0, 3, 7)
    await fh.close()
    corrupted++
  }
  assert.ok(corrupted > 0)
  const got = await call(`${net.proxy}/c/${pub.id}`)
  assert.is(got.status, 200)
  assert.ok(got.body.equals(await readFile(file)))
  await eventually('the bad copy is reported', async () => {
    const ev = await getJson(`${net.manager}/api/events?limit=500`, net.adminToken)
    return ev.body.events.some((e: any) => e.kind === 'bad-copy-verified' && e.content === pub.id && e.node === node.peerId)
  }, 15_000)
})

// Last: it stops every node.
test('a replay and a seek back are served from the cache with every node stopped', async ({ net, contents }) => {
  const { id, bytes } = contents.get('ragged')!
  const first = await call(`${net.proxy}/c/${id}`)
  assert.ok(first.body.equals(bytes))
  for (const n of net.nodes) process.kill(n.pid, 'SIGKILL')
  await eventually('nodes are gone', async () => {
    const alive = await Promise.all(net.nodes.map(async n => await fetch(`${n.http}/health`).then(() => true, () => false)))
    return alive.every(a => !a)
  })
  const replay = await call(`${net.proxy}/c/${id}`)
  assert.is(replay.status, 200)
  assert.ok(replay.body.equals(bytes), 'replay from cache')
  const seek = await call(`${net.proxy}/c/${id}`, 'GET', { range: `bytes=${CHUNK + 5}-` })
  assert.is(seek.status, 206)
  assert.ok(seek.body.equals(bytes.subarray(CHUNK + 5)), 'seek back from cache')
})

test.run()
