/**
 * The CLI given several managers (`--manager` repeated, `CDN_MANAGER` a
 * list), against real `node:http` servers on loopback: a closed port, a
 * manager answering 503 and live ones. A call goes past the dead ones and
 * the next call starts with the one that answered; a live manager's 4xx is
 * final; a publish skips dead managers before its body starts, and an upload
 * cut halfway is never sent again to another manager.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { BadInputError, NotFoundError, UpstreamError } from '../../../core/errors.ts'
import { managerUrls } from '../../../cli/cli-options.ts'
import { callManager, ManagerRing } from '../../../cli/manager-api.ts'
import { MANAGER_DEFAULTS } from '../../../manager/defaults.ts'
import { publish } from '../../../cli/publish.ts'
import { answering, closedPort, fakeManager, sendJson, type FakeManager } from '../proxy/failover-servers.ts'
import { caught } from '../../support/rejects.ts'

interface Ctx {
  dir: string
  closed: string
  busy: FakeManager
  live: FakeManager
  /** a second live manager, as the last resort */
  spare: FakeManager
}

const test = suite<Ctx>('cli failover across managers')
const ROOT = join(import.meta.dirname, '..', '..', '..')
const FILE_SIZE = 4 * 1024 * 1024

/** A manager of the pool: answers info, lists contents, refuses a deleted one, takes publishes whole. */
async function liveManager (name: string): Promise<FakeManager> {
  return await fakeManager((req, res) => {
    if (req.url === '/api/info') return sendJson(res, 200, { peerId: name, multiaddrs: [], http: '' })
    if (req.url === '/api/contents' && req.method === 'GET') return sendJson(res, 200, { contents: [], from: name })
    if (req.url === '/api/publish') return sendJson(res, 200, { id: `id-from-${name}`, key: 'k', size: FILE_SIZE, chunks: 4, replicas: 3 })
    sendJson(res, 404, { error: { code: 'ERR_NOT_FOUND', message: `no such thing at ${name}` } })
  })
}

test.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'cdn-cli-failover-'))
  ctx.closed = await closedPort()
  ctx.busy = await answering(503, 'shutting down')
  ctx.live = await liveManager('live')
  ctx.spare = await liveManager('spare')
})

test.after.each(async (ctx) => {
  for (const m of [ctx.busy, ctx.live, ctx.spare]) await m.close()
  await rm(ctx.dir, { recursive: true, force: true })
})

const paths = (m: FakeManager): string[] => m.seen.map(s => `${s.method} ${s.path}`)

test('CDN_MANAGER and --manager: lists, repeats, duplicates, the default, bad URLs', () => {
  const env = { CDN_MANAGER: ' http://a:1, http://b:2\nhttp://c:3 ,,http://a:1/ ' }
  assert.equal(managerUrls({}, env), ['http://a:1', 'http://b:2', 'http://c:3'])
  assert.equal(managerUrls({ manager: ['http://x:1', 'http://y:2,http://z:3'] }, env), ['http://x:1', 'http://y:2', 'http://z:3'], 'flags win over the environment')
  assert.equal(managerUrls({ manager: 'http://x:1' }, env), ['http://x:1'])
  const local = `http://${MANAGER_DEFAULTS.httpHost}:${MANAGER_DEFAULTS.httpPort}`
  assert.equal(managerUrls({}, {}), [local])
  assert.equal(managerUrls({}, { CDN_MANAGER: '  ' }), [local], 'an empty variable is no list')
  for (const bad of ['ftp://a:1', 'http://a:1,not a url']) {
    try {
      managerUrls({}, { CDN_MANAGER: bad })
      assert.unreachable(bad)
    } catch (err) {
      assert.instance(err, BadInputError)
    }
  }
})

test('a call goes past a closed port and a 503 to the live manager, and the next call starts there', async (ctx) => {
  const ring = new ManagerRing([ctx.closed, ctx.busy.url, ctx.live.url, ctx.spare.url])
  assert.is((await callManager({ manager: ring }, 'GET', '/api/contents')).from, 'live')
  assert.is((await callManager({ manager: ring }, 'GET', '/api/contents')).from, 'live')
  assert.equal(paths(ctx.busy), ['GET /api/contents'], 'the 503 manager was asked once')
  assert.equal(paths(ctx.live), ['GET /api/contents', 'GET /api/contents'])
  assert.equal(paths(ctx.spare), [])
})

test("a live manager's 4xx is final, for a GET and a DELETE", async (ctx) => {
  const refusing = await answering(404, 'unknown content')
  try {
    for (const method of ['GET', 'DELETE'] as const) {
      const err = await caught(callManager({ manager: [refusing.url, ctx.live.url] }, method, '/api/contents/x'))
      assert.instance(err, NotFoundError)
      assert.is(err.message, 'unknown content')
    }
    assert.equal(paths(ctx.live), [], 'the next manager never heard of it')
  } finally {
    await refusing.close()
  }
})

test('a POST cut after it was sent is not sent again; one refused at connect is', async (ctx) => {
  const cutter = await fakeManager(() => {}, (req) => {
    req.socket.destroy()
    return true
  })
  try {
    const err = await caught(callManager({ manager: [cutter.url, ctx.live.url] }, 'POST', '/api/tokens', { data: '{}', headers: { 'content-type': 'application/json' } }))
    assert.instance(err, UpstreamError)
    assert.ok(err.message.includes(cutter.url), err.message)
    assert.equal(paths(ctx.live), [])
    await caught(callManager({ manager: [ctx.closed, ctx.busy.url, ctx.live.url] }, 'POST', '/api/tokens', { data: '{}', headers: { 'content-type': 'application/json' } }))
    assert.equal(paths(ctx.live), ['POST /api/tokens'], 'reached the live manager (which answers 404 here: final)')
  } finally {
    await cutter.close()
  }
})

test('no manager answering: one error names each; one manager fails with the same words as always', async (ctx) => {
  const err = await caught(callManager({ manager: [ctx.closed, ctx.busy.url] }, 'GET', '/api/contents'))
  assert.instance(err, UpstreamError)
  assert.is(err.message, `no manager answered: ${ctx.closed} (cannot reach the manager at ${ctx.closed} (ECONNREFUSED)); ${ctx.busy.url} (shutting down)`)
  const one = await caught(callManager({ manager: ctx.closed }, 'GET', '/api/contents'))
  assert.is(one.message, `cannot reach the manager at ${ctx.closed} (ECONNREFUSED)`)
})

test('publish skips dead managers before the body starts and uploads once, whole', async (ctx) => {
  const file = join(ctx.dir, 'movie.mp4')
  await writeFile(file, randomBytes(FILE_SIZE))
  const r = await publish(file, { manager: [ctx.closed, ctx.busy.url, ctx.live.url], token: 't', proxy: 'http://127.0.0.1:8080', json: true })
  assert.is(r.id, 'id-from-live')
  assert.equal(paths(ctx.busy), ['GET /api/info'], 'only probed, never sent the file')
  assert.equal(paths(ctx.live), ['GET /api/info', 'POST /api/publish'])
  assert.is(ctx.live.seen[1].bytes, FILE_SIZE)
})

test('an upload cut halfway fails naming its manager and is never replayed on another', async (ctx) => {
  const file = join(ctx.dir, 'movie.mp4')
  await writeFile(file, randomBytes(FILE_SIZE))
  // Alive when picked; dies once a quarter of the file is in, as a manager killed during a publish.
  const dying = await fakeManager((req, res) => { sendJson(res, 200, { peerId: 'dying', multiaddrs: [], http: '' }) }, (req, seen) => {
    if (req.url !== '/api/publish') return false
    req.on('data', () => { if (seen.bytes >= FILE_SIZE / 4) req.socket.destroy() })
    return true
  })
  try {
    const err = await caught(publish(file, { manager: [ctx.closed, dying.url, ctx.live.url], token: 't', proxy: 'http://127.0.0.1:8080', json: true }))
    assert.instance(err, UpstreamError)
    assert.match(err.message, new RegExp(`^the upload to the manager at ${dying.url} failed, and is not sent again to another manager: `))
    assert.not.match(err.message, /\n/)
    assert.equal(paths(dying), ['GET /api/info', 'POST /api/publish'])
    assert.ok(dying.seen[1].bytes < FILE_SIZE)
    assert.equal(paths(ctx.live), [], 'the live manager never saw the upload')
  } finally {
    await dying.close()
  }
})

test('the cdn command takes --manager repeated and CDN_MANAGER as a list', async (ctx) => {
  const run = async (args: string[], env: Record<string, string>): Promise<{ code: number | null, out: string, err: string }> => {
    const child = spawn(process.execPath, [join(ROOT, 'cli', 'cdn.ts'), ...args], { cwd: ROOT, env: { ...process.env, CDN_TOKEN: 't', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    const [code] = await once(child, 'exit') as [number | null]
    return { code, out, err }
  }
  const flags = await run(['ls', '--json', '--manager', ctx.closed, '--manager', ctx.busy.url, '--manager', ctx.spare.url], { CDN_MANAGER: ctx.live.url })
  assert.is(flags.code, 0, flags.err)
  assert.is(JSON.parse(flags.out).from, 'spare', 'the flags win over CDN_MANAGER')
  const listed = await run(['ls', '--json'], { CDN_MANAGER: `${ctx.closed}, ${ctx.live.url}` })
  assert.is(listed.code, 0, listed.err)
  assert.is(JSON.parse(listed.out).from, 'live')
})

test.run()
