import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { createServer, request, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { BandwidthLimiter } from '../../../core/bandwidth-limiter.ts'
import { sendBlob } from '../../../node/blob-sender.ts'
import { BufferPool } from '../../../node/buffer-pool.ts'

/** A blob in memory, read as the store's reader reads: into the caller's buffer, shorter only past its end. */
function memoryReader (bytes: Buffer, claimedSize = bytes.length): { size: number, readInto: (t: Buffer, p: number) => Promise<number> } {
  return {
    size: claimedSize,
    readInto: async (target, position) => {
      await new Promise(resolve => setImmediate(resolve))
      return bytes.copy(target, 0, position, Math.min(bytes.length, position + target.length))
    }
  }
}

interface Served { server: Server, url: string, outcomes: Array<Promise<unknown>> }

/** A server that sends `blobs[path]` with `send`, remembering whether each send resolved or rejected. */
async function serve (blobs: Record<string, Buffer>, send: (res: ServerResponse, blob: Buffer) => Promise<void>): Promise<Served> {
  const outcomes: Array<Promise<unknown>> = []
  const server = createServer((req, res) => {
    const blob = blobs[req.url ?? '']
    res.writeHead(200, { 'content-length': blob.length })
    const done = send(res, blob)
    outcomes.push(done.then(() => 'sent', (err: unknown) => {
      res.destroy()
      return err
    }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, outcomes }
}

async function stop (s: Served): Promise<void> {
  s.server.closeAllConnections()
  await new Promise(resolve => { s.server.close(resolve) })
}

/** GETs `path`; with `stallMs` the client stops reading after the first bytes for that long, so the server's writes back up. */
async function get (url: string, path: string, stallMs = 0): Promise<Buffer> {
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    request(`${url}${path}`, resolve).on('error', reject).end()
  })
  const parts: Buffer[] = []
  let stalled = stallMs === 0
  for await (const piece of res) {
    parts.push(piece as Buffer)
    if (!stalled) {
      stalled = true
      await new Promise(resolve => setTimeout(resolve, stallMs))
    }
  }
  return Buffer.concat(parts)
}

test('under a cap no byte is written before it is paid for, and every byte is paid for once', async () => {
  const blob = randomBytes(300_000)
  // Slow enough that every slice, the first included, waits for its share.
  const limiter = new BandwidthLimiter(2_000_000, 10_000)
  let paid = 0
  let written = 0
  let overdrawn = 0
  const counting = {
    unlimited: false,
    take: async (n: number, signal?: AbortSignal) => {
      await limiter.take(n, signal)
      paid += n
    }
  }
  // Reads of 100 000 bytes, paid and written in slices of 30 000: reads and slices do not line up.
  const pool = new BufferPool({ size: 100_000 })
  const s = await serve({ '/b': blob }, async (res, b) => {
    const write = res.write.bind(res) as (chunk: Buffer, cb?: () => void) => boolean
    res.write = ((chunk: Buffer, cb?: () => void) => {
      written += chunk.length
      if (written > paid) overdrawn++
      return write(chunk, cb)
    }) as typeof res.write
    await sendBlob({ limiter: counting, pool }, res, memoryReader(b), { slice: 30_000, signal: new AbortController().signal, onSent: () => {} })
  })
  try {
    assert.equal(await get(s.url, '/b'), blob)
    assert.is(await s.outcomes[0], 'sent')
    assert.is(overdrawn, 0, 'bytes were written before they were paid for')
    assert.is(paid, blob.length)
    assert.is(written, blob.length)
  } finally {
    await stop(s)
  }
})

test('reused buffers never mix bytes of concurrent responses, even when clients stall', async () => {
  const blobs: Record<string, Buffer> = {}
  // Larger than loopback's socket buffers, so a stalled client leaves writes queued in the server, the last piece's too.
  for (let i = 0; i < 6; i++) blobs[`/${i}`] = randomBytes(8 * 1024 * 1024 - i * 1000)
  // Fewer buffers kept than responses in flight, and reads smaller than a blob: buffers go round.
  const pool = new BufferPool({ size: 1024 * 1024, keep: 2 })
  const unlimited = new BandwidthLimiter(Infinity)
  const s = await serve(blobs, async (res, b) => {
    await sendBlob({ limiter: unlimited, pool }, res, memoryReader(b), { slice: Infinity, signal: new AbortController().signal, onSent: () => {} })
  })
  try {
    for (let round = 0; round < 3; round++) {
      const got = await Promise.all(Object.keys(blobs).map(async (path, i) => await get(s.url, path, i % 2 === 0 ? 200 : 0)))
      Object.values(blobs).forEach((b, i) => { assert.ok(got[i].equals(b), `response ${i} of round ${round} differs from its blob`) })
    }
    assert.ok(pool.idleCount > 0, 'no buffer came back to the pool')
  } finally {
    await stop(s)
  }
})

test('a blob shorter on disk than its size is refused once its bytes run out; nothing more is written', async () => {
  const blob = randomBytes(200_000)
  const pool = new BufferPool({ size: 64 * 1024 })
  const s = await serve({ '/short': blob }, async (res, b) => {
    await sendBlob({ limiter: new BandwidthLimiter(Infinity), pool }, res, memoryReader(b.subarray(0, 150_000), b.length), { slice: Infinity, signal: new AbortController().signal, onSent: () => {} })
  })
  try {
    const got = await get(s.url, '/short').catch(() => undefined)
    assert.ok(got == null || got.length < blob.length)
    const outcome = await s.outcomes[0]
    assert.instance(outcome, Error)
    assert.match((outcome as Error).message, /shrank/)
  } finally {
    await stop(s)
  }
})

test('an aborted response stops paying and writing', async () => {
  const blob = randomBytes(1_000_000)
  const limiter = new BandwidthLimiter(200_000, 64 * 1024)
  const ac = new AbortController()
  const pool = new BufferPool({ size: 128 * 1024 })
  let sent = 0
  const s = await serve({ '/slow': blob }, async (res, b) => {
    await sendBlob({ limiter, pool }, res, memoryReader(b), { slice: 64 * 1024, signal: ac.signal, onSent: (n) => { sent += n; if (sent >= 128 * 1024) ac.abort(new Error('client went away')) } })
  })
  try {
    await get(s.url, '/slow').catch(() => undefined)
    const outcome = await s.outcomes[0]
    assert.instance(outcome, Error)
    assert.is(sent, 128 * 1024)
  } finally {
    await stop(s)
  }
})

test.run()
