/**
 * Reads while the pool moves copies: every holder a read started with dies or
 * loses its copy, and a fresh look at the holders finds where the copies went;
 * a read never waits for itself when chunks fetched ahead fill its window; and
 * a body that ends short reaches the browser as a cut connection, never as a
 * clean end. Sources are a test double of the data plane, so every case is
 * decided by what the sources do, not by timing.
 */
import { once } from 'node:events'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { NoSourceError } from '../../../../core/errors.ts'
import { silentLogger } from '../../../../core/log.ts'
import { createMetricsRegistry } from '../../../../core/metrics.ts'
import { ContentReader, type ContentReaderInit } from '../../../../proxy/fetch/content-reader.ts'
import { DownloadTracker } from '../../../../proxy/http/download-tracker.ts'
import type { FetchEngine } from '../../../../proxy/fetch/fetch-engine.ts'
import { createGateway } from '../../../../proxy/http/gateway.ts'
import { Scoreboard } from '../../../../proxy/fetch/scoreboard.ts'
import type { ContentSource } from '../../../../proxy/resolve/sources.ts'
import { PlaneDouble } from '../plane-double.ts'
import { collect, eventually, makeContent, makeSigner, type TestContent } from '../../proxy-standins.ts'

const CHUNK = 16 * 1024
const logger = silentLogger()

interface Ctx {
  content: TestContent
  plane: PlaneDouble
  /** how many times the reader asked for fresh sources */
  looks: number
}

const test = suite<Ctx>('reads during churn')

test.before.each(async (ctx) => {
  ctx.content = await makeContent({ size: 8 * CHUNK - 7, chunkSize: CHUNK, signer: await makeSigner() })
  ctx.plane = new PlaneDouble(ctx.content)
  ctx.looks = 0
})

function reader (ctx: Ctx, start: string[], fresh: (r: ContentReader) => Promise<ContentSource[]>, init: ContentReaderInit = {}): ContentReader {
  const r: ContentReader = new ContentReader({
    fetcher: ctx.plane,
    scoreboard: new Scoreboard(),
    logger,
    findSources: async () => {
      ctx.looks++
      return await fresh(r)
    }
  }, { id: ctx.content.id, manifest: ctx.content.manifest, key: ctx.content.key, sources: ctx.plane.sources(start) }, { retryBackoffMs: 1, hedgeFactor: Infinity, ...init })
  return r
}

function failAll (ctx: Ctx, source: string): void {
  for (let i = 0; i < ctx.content.chunkIds.length; i++) ctx.plane.set(source, i, 'fail')
}

/** A read that stops making progress is a bug under test, not a slow machine: the bound is generous. */
async function within<T> (p: Promise<T>, what: string, ms = 20_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const stalled = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what} never finished`)) }, ms) })
  try {
    return await Promise.race([p, stalled])
  } finally {
    clearTimeout(timer)
  }
}

test('every holder the read started with is gone: a fresh look finds the moved copies, and every byte arrives', async (ctx) => {
  // a died (refused), b lost its copies in a trim (404): both fail every chunk.
  failAll(ctx, 'a')
  failAll(ctx, 'b')
  const r = reader(ctx, ['a', 'b'], async () => ctx.plane.sources(['c']))
  const { bytes } = await within(collect(r), 'the read')
  assert.ok(bytes.equals(ctx.content.plaintext))
  assert.ok(ctx.looks >= 1)
  assert.ok(ctx.plane.calls.some(c => c.source === 'c' && c.end === 'served'))
})

test('a holder that dies mid-read: the chunks only it had come from where the pool copied them', async (ctx) => {
  // a holds everything, b only the first half; a dies after chunk 2.
  const start: ContentSource[] = [...ctx.plane.sources(['a']), ...ctx.plane.sources(['b'], [0, 1, 2, 3])]
  const read = new ContentReader({
    fetcher: ctx.plane,
    scoreboard: new Scoreboard(),
    logger,
    findSources: async () => {
      ctx.looks++
      return [...ctx.plane.sources(['b'], [0, 1, 2, 3]), ...ctx.plane.sources(['c'])]
    }
  }, { id: ctx.content.id, manifest: ctx.content.manifest, key: ctx.content.key, sources: start }, { retryBackoffMs: 1, hedgeFactor: Infinity, window: { min: 1, max: 1 } })
  const parts: Uint8Array[] = []
  for await (const piece of read) {
    parts.push(piece)
    if (parts.length === 3) failAll(ctx, 'a')
  }
  assert.ok(Buffer.concat(parts).equals(ctx.content.plaintext))
  assert.is(ctx.looks, 1, 'one fresh look was enough')
  assert.ok(ctx.plane.calls.some(c => c.source === 'c' && c.chunk >= 4 && c.end === 'served'))
})

test('a fresh look that finds nobody new ends the read with NoSourceError, after a bounded number of looks', async (ctx) => {
  ctx.plane.set('a', 3, 'fail')
  ctx.plane.set('b', 3, 'fail')
  const r = reader(ctx, ['a', 'b'], async () => ctx.plane.sources(['a', 'b']))
  let got = 0
  try {
    await within((async () => { for await (const piece of r) got += piece.length })(), 'the failing read')
    assert.unreachable('the read should fail')
  } catch (err) {
    assert.instance(err, NoSourceError)
    assert.match((err as Error).message, /chunk 3/)
  }
  assert.is(got, 3 * CHUNK)
  assert.ok(ctx.looks >= 1 && ctx.looks <= 5, `${ctx.looks} looks`)
})

test('the chunk at the playhead gets a request even when chunks fetched ahead of it fill a window that shrank', async (ctx) => {
  // Three sources open a window of six; chunk 0 fails on all of them while 1–5 arrive.
  for (const s of ['a', 'b', 'c']) ctx.plane.set(s, 0, 'fail')
  const r = reader(ctx, ['a', 'b', 'c'], async (self) => {
    await eventually(() => self.stats().buffered === 5, 'chunks 1-5 buffered')
    // One source left: the window shrinks below what is already buffered.
    return ctx.plane.sources(['d'])
  }, { window: { max: 6 } })
  const { bytes } = await within(collect(r), 'the read')
  assert.ok(bytes.equals(ctx.content.plaintext))
  assert.ok(ctx.plane.calls.some(c => c.source === 'd' && c.chunk === 0 && c.end === 'served'))
})

// ---- what the browser sees -----------------------------------------------

async function gatewayOver (engine: FetchEngine): Promise<{ url: string, server: Server, tracker: DownloadTracker }> {
  const tracker = new DownloadTracker()
  const handler = createGateway({ engine, tracker, registry: createMetricsRegistry('proxy'), logger }, { listenHost: '127.0.0.1', listenPort: () => 0 })
  const server = createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, tracker }
}

/** An engine whose reads hand out `give` bytes of the content and then end as if complete, or fail. */
function shortEngine (content: TestContent, give: number, end: 'done' | 'error'): FetchEngine {
  const stat = { id: content.id, manifest: content.manifest, metadata: { name: 'x.bin', type: 'application/octet-stream' }, size: content.plaintext.length }
  return {
    stat: async () => stat,
    open: async () => {
      async function * body (): AsyncGenerator<Uint8Array> {
        yield content.plaintext.subarray(0, give)
        if (end === 'error') throw new NoSourceError('every holder failed')
      }
      return { ...stat, body: body() }
    },
    snapshot: () => ({ sources: [], memory: { bytes: 0, maxBytes: 0, peak: 0, accounts: 0, waiting: 0, reclaimed: 0 } }),
    close: async () => {}
  }
}

/** Reads a response to its end the way curl does: every byte, and whether it ended cleanly (a clean end is a claim that the body is whole). */
async function download (url: string): Promise<{ status: number, bytes: number, clean: boolean }> {
  return await new Promise((resolve) => {
    let status = 0
    let bytes = 0
    const cut = (): void => { resolve({ status, bytes, clean: false }) }
    const req = request(url, (res) => {
      status = res.statusCode ?? 0
      res.on('data', (d: Buffer) => { bytes += d.length })
      res.on('end', () => { resolve({ status, bytes, clean: true }) })
      res.on('error', cut)
      res.on('aborted', cut)
    })
    // The connection may be cut before the status line got out: still no clean end.
    req.on('error', cut)
    req.end()
  })
}

for (const end of ['done', 'error'] as const) {
  test(`a 200 whose body falls short (${end === 'done' ? 'the read ended early' : 'the read failed'}) ends in a cut connection, never a clean end`, async (ctx) => {
    const { url, server, tracker } = await gatewayOver(shortEngine(ctx.content, 2 * CHUNK, end))
    try {
      const r = await within(download(`${url}/c/${ctx.content.id}`), 'the download')
      assert.is(r.clean, false, 'the client can tell the body is incomplete')
      assert.ok(r.status === 0 || r.status === 200, `status ${r.status}`)
      assert.ok(r.bytes <= 2 * CHUNK)
      // The dashboard does not call it done either.
      const [view] = tracker.snapshot().recent
      assert.is(view?.state, 'failed')
      assert.ok(view?.error)
    } finally {
      server.closeAllConnections()
      server.close()
    }
  })
}

test.run()
