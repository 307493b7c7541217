/**
 * `cdn publish FILE --name NAME` against a small manager speaking the upload
 * session protocol, a real `node:http` server on loopback: only the chunks it
 * lacks are sent, a PUT answered 503 or cut is sent again, a commit answered
 * 409 ERR_MISSING_CHUNKS gets those chunks and is committed again, a refusal
 * of the plan sends nothing, and a PUT that failed at one manager goes to the
 * next of the pool.
 */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { BadInputError, ForbiddenError, NotFoundError } from '../../../core/errors.ts'
import { planFile } from '../../../cli/file-chunks.ts'
import { uploadNamed } from '../../../cli/named-upload.ts'
import { publish } from '../../../cli/publish.ts'
import { caught } from '../../support/rejects.ts'

const MiB = 1024 * 1024
const NAME = 'films/launch.bin'
const ENC = encodeURIComponent(NAME)
const TOKEN = 'publisher-token'
const ROOT = join(import.meta.dirname, '..', '..', '..')

interface Call { method: string, path: string, bytes: number }

/** What the fake pool holds, shared by every manager of it (as the catalog is). */
interface Pool {
  held: Set<string>
  plan: Array<{ hash: string, size: number }>
  /** answers a test forces before the normal ones; return true when it answered */
  intercept?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => boolean
}

interface FakeManager { url: string, calls: Call[], close: () => Promise<void> }

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

function reply (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

const missingOf = (pool: Pool): number[] => pool.plan.flatMap((c, i) => pool.held.has(c.hash) ? [] : [i])

function answer (pool: Pool, req: IncomingMessage, res: ServerResponse, body: Buffer): void {
  if (req.headers.authorization !== `Bearer ${TOKEN}`) return reply(res, 401, { error: { code: 'ERR_UNAUTHORIZED', message: 'no token' } })
  const base = `/api/names/${ENC}/uploads`
  const url = req.url ?? ''
  if (req.method === 'POST' && url === base) {
    const plan = JSON.parse(body.toString())
    pool.plan = plan.chunks
    const missing = missingOf(pool)
    return reply(res, 200, { upload: 'upload-1', missing, missingBytes: missing.reduce((s, i) => s + pool.plan[i].size, 0), chunks: pool.plan.length, resumed: false })
  }
  const put = new RegExp(`^${base}/upload-1/chunks/(\\d+)$`).exec(url)
  if (req.method === 'PUT' && put != null) {
    const index = Number(put[1])
    if (sha(body) !== pool.plan[index]?.hash) return reply(res, 400, { error: { code: 'ERR_BAD_INPUT', message: 'bytes do not match the hash' } })
    const stored = !pool.held.has(sha(body))
    pool.held.add(sha(body))
    return reply(res, 200, { index, stored })
  }
  if (req.method === 'POST' && url === `${base}/upload-1/commit`) {
    const missing = missingOf(pool)
    if (missing.length > 0) return reply(res, 409, { error: { missing, code: 'ERR_MISSING_CHUNKS', message: `${missing.length} chunks missing` } })
    const size = pool.plan.reduce((s, c) => s + c.size, 0)
    return reply(res, 201, { id: 'c'.repeat(52), size, chunks: pool.plan.length, replicas: 3, key: 'a2V5', name: NAME, seq: 2, uploadedBytes: 0, reusedChunks: 0 })
  }
  reply(res, 404, { error: { code: 'ERR_NOT_FOUND', message: `no route ${req.method} ${url}` } })
}

async function fakeManager (pool: Pool, own?: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<FakeManager> {
  const calls: Call[] = []
  const server = createServer((req, res) => {
    const parts: Buffer[] = []
    req.on('data', (d: Buffer) => parts.push(d))
    req.on('end', () => {
      const body = Buffer.concat(parts)
      calls.push({ method: req.method ?? '', path: (req.url ?? '').replace(`/api/names/${ENC}/uploads`, ''), bytes: body.length })
      if (own?.(req, res) === true || pool.intercept?.(req, res, body) === true) return
      answer(pool, req, res, body)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: async () => {
      const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      server.closeAllConnections()
      await closed
    }
  }
}

interface Ctx { dir: string, file: string, data: Buffer, pool: Pool, manager: FakeManager }
const test = suite<Ctx>('cdn publish --name: the upload session client')

test.before.each(async (ctx) => {
  ctx.dir = await mkdtemp(join(tmpdir(), 'cdn-named-upload-'))
  ctx.data = randomBytes(6 * MiB + 1234)
  ctx.file = join(ctx.dir, 'launch.bin')
  await writeFile(ctx.file, ctx.data)
  ctx.pool = { held: new Set(), plan: [] }
  ctx.manager = await fakeManager(ctx.pool)
})

test.after.each(async (ctx) => {
  await ctx.manager.close()
  await rm(ctx.dir, { recursive: true, force: true })
})

const opts = (manager: string | string[]) => ({ manager, token: TOKEN, proxy: 'http://127.0.0.1:8080', json: true, publishName: NAME, name: NAME })
const puts = (m: FakeManager): string[] => m.calls.filter(c => c.method === 'PUT').map(c => c.path)

/** Marks the chunks at these indexes of the file as already in the pool. */
async function hold (ctx: Ctx, indexes: number[], mode?: 'fixed'): Promise<number> {
  const chunks = await planFile(ctx.file, { mode })
  for (const i of indexes) ctx.pool.held.add(chunks[i].hash)
  return chunks.length
}

test('only the chunks the manager lacks are read and sent, each with its own bytes', async (ctx) => {
  const count = await hold(ctx, [0, 2, 3, 5], 'fixed')
  assert.is(count, 7)
  const r = await publish(ctx.file, { ...opts(ctx.manager.url), chunking: 'fixed' })
  assert.equal(puts(ctx.manager).sort(), ['/upload-1/chunks/1', '/upload-1/chunks/4', '/upload-1/chunks/6'])
  assert.equal(ctx.manager.calls.map(c => c.method), ['POST', 'PUT', 'PUT', 'PUT', 'POST'])
  assert.is(ctx.manager.calls[0].path, '', `the plan goes to /api/names/${ENC}/uploads`)
  assert.is(r.uploadedBytes, 2 * MiB + 1234)
  assert.is(r.reusedChunks, 4)
  assert.equal([r.name, r.seq, r.size, r.chunks], [NAME, 2, ctx.data.length, 7])
  assert.ok(r.link.endsWith('?k=a2V5'))
})

test('cut by content by default: the plan is the cdc cut, and nothing is sent when the pool holds it all', async (ctx) => {
  const chunks = await planFile(ctx.file)
  for (const c of chunks) ctx.pool.held.add(c.hash)
  const r = await publish(ctx.file, opts(ctx.manager.url))
  assert.equal(puts(ctx.manager), [])
  assert.equal(ctx.pool.plan, chunks.map(c => ({ hash: c.hash, size: c.size })))
  assert.equal([r.uploadedBytes, r.reusedChunks, r.chunks], [0, chunks.length, chunks.length])
})

test('an empty file: an empty plan, no PUT, a commit', async (ctx) => {
  const empty = join(ctx.dir, 'empty.bin')
  await writeFile(empty, Buffer.alloc(0))
  const r = await publish(empty, opts(ctx.manager.url))
  assert.equal(ctx.pool.plan, [])
  assert.equal(ctx.manager.calls.map(c => `${c.method} ${c.path}`), ['POST ', 'POST /upload-1/commit'])
  assert.equal([r.size, r.chunks, r.uploadedBytes, r.reusedChunks], [0, 0, 0, 0])
})

test('a PUT answered 503, or cut, is sent again and the publish succeeds', async (ctx) => {
  let tricks = 0
  ctx.pool.intercept = (req, res) => {
    if (req.method !== 'PUT' || tricks >= 2) return false
    tricks++
    if (tricks === 1) reply(res, 503, { error: { code: 'ERR_SHUTTING_DOWN', message: 'busy' } })
    else req.socket.destroy()
    return true
  }
  const r = await publish(ctx.file, { ...opts(ctx.manager.url), chunking: 'fixed' })
  assert.is(tricks, 2)
  assert.is(puts(ctx.manager).length, 7 + 2, 'every chunk once, two of them twice')
  assert.is(new Set(puts(ctx.manager)).size, 7)
  assert.is(r.uploadedBytes, ctx.data.length)
  assert.is(r.reusedChunks, 0)
})

test('a commit answered 409 ERR_MISSING_CHUNKS gets those chunks sent, then commits again', async (ctx) => {
  await hold(ctx, [0, 1, 2, 3, 4, 5, 6], 'fixed')
  const chunks = await planFile(ctx.file, { mode: 'fixed' })
  let commits = 0
  ctx.pool.intercept = (req) => {
    // The pool lost two chunks it held: the first commit finds them missing.
    if (req.url?.endsWith('/commit') === true && commits++ === 0) {
      ctx.pool.held.delete(chunks[3].hash)
      ctx.pool.held.delete(chunks[5].hash)
    }
    return false
  }
  const r = await publish(ctx.file, { ...opts(ctx.manager.url), chunking: 'fixed' })
  const calls = ctx.manager.calls.map(c => `${c.method} ${c.path}`)
  // The two PUTs go in parallel: either may arrive first.
  assert.equal([...calls.slice(0, 2), ...calls.slice(2, 4).sort(), calls[4]], [
    'POST ', 'POST /upload-1/commit', 'PUT /upload-1/chunks/3', 'PUT /upload-1/chunks/5', 'POST /upload-1/commit'
  ])
  assert.is(calls.length, 5)
  assert.is(r.uploadedBytes, 2 * MiB)
  assert.is(r.reusedChunks, 5)
})

test('a 403 on the plan is a clear error and not one chunk is sent', async (ctx) => {
  ctx.pool.intercept = (req, res) => {
    reply(res, 403, { error: { code: 'ERR_FORBIDDEN', message: `the name ${NAME} belongs to another publisher` } })
    return true
  }
  const err = await caught(publish(ctx.file, opts(ctx.manager.url)))
  assert.instance(err, ForbiddenError)
  assert.is(err.message, `the name ${NAME} belongs to another publisher`)
  assert.equal(ctx.manager.calls.map(c => c.method), ['POST'])
})

test('a final answer to a PUT (404: the session expired) is not retried', async (ctx) => {
  ctx.pool.intercept = (req, res) => {
    if (req.method !== 'PUT') return false
    reply(res, 404, { error: { code: 'ERR_NOT_FOUND', message: 'unknown or expired upload session' } })
    return true
  }
  const err = await caught(publish(ctx.file, { ...opts(ctx.manager.url), chunking: 'fixed' }))
  assert.instance(err, NotFoundError)
  assert.match(err.message, /expired upload session/)
  assert.ok(puts(ctx.manager).length <= 4, 'the chunks under way when it came, no more')
  assert.not.ok(ctx.manager.calls.some(c => c.path.endsWith('/commit')))
})

test('with several managers, a PUT cut at one goes to the next, which the rest of the upload keeps', async (ctx) => {
  const cutting = await fakeManager(ctx.pool, (req) => {
    if (req.method !== 'PUT') return false
    req.socket.destroy()
    return true
  })
  try {
    const r = await publish(ctx.file, { ...opts([cutting.url, ctx.manager.url]), chunking: 'fixed' })
    assert.equal(cutting.calls.filter(c => c.method === 'POST').map(c => c.path), [''], 'the plan went to the first manager')
    assert.ok(puts(cutting).length >= 1)
    assert.is(new Set(puts(ctx.manager)).size, 7, 'every chunk reached the second')
    assert.ok(ctx.manager.calls.some(c => c.path === '/upload-1/commit'))
    assert.is(r.uploadedBytes, ctx.data.length)
  } finally {
    await cutting.close()
  }
})

test('a file changed since it was hashed is refused before its chunk is sent', async (ctx) => {
  const chunks = await planFile(ctx.file, { mode: 'fixed' })
  const err = await caught(uploadNamed(NAME, { chunks, file: NAME, type: 'application/octet-stream' }, {
    api: { manager: ctx.manager.url, token: TOKEN },
    readChunk: async (chunk) => Buffer.alloc(chunk.size)
  }))
  assert.instance(err, BadInputError)
  assert.match(err.message, /changed while it was being published/)
  assert.equal(puts(ctx.manager), [])
})

test('the cdn command prints uploadedBytes and reusedChunks with --json', async (ctx) => {
  await hold(ctx, [1, 2, 3, 4, 5, 6], 'fixed')
  const tokenFile = join(ctx.dir, 'token')
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 })
  const child = spawn(process.execPath, [join(ROOT, 'cli', 'cdn.ts'), 'publish', ctx.file, '--name', NAME, '--chunking', 'fixed', '--json', '--manager', ctx.manager.url, '--token-file', tokenFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  assert.is(code, 0, err)
  const printed = JSON.parse(out)
  assert.equal([printed.uploadedBytes, printed.reusedChunks, printed.seq], [MiB, 6, 2])
  assert.is(err, '', 'no progress bar on stderr with --json')
})

test.run()
