import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { download, fileFingerprint } from '../../../bench/download.ts'
import { makeRandomFile, requireFreeDisk } from '../../../bench/files.ts'
import { parseStatusField, PeakRss } from '../../../bench/rss.ts'
import { CapacityError, HashMismatchError, UpstreamError } from '../../../core/errors.ts'

const MiB = 1024 * 1024

async function rejects (p: Promise<unknown>, check: (err: unknown) => boolean): Promise<void> {
  let caught: unknown
  try {
    await p
  } catch (err) {
    caught = err
  }
  assert.ok(caught !== undefined, 'expected a rejection')
  assert.ok(check(caught), `unexpected error: ${String(caught)}`)
}
let dir: string
let server: Server
let base: string
let body: Buffer
let fingerprint: string

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdn-bench-download-'))
  const file = join(dir, 'content.bin')
  await makeRandomFile(file, 3 * MiB + 5)
  body = await readFile(file)
  fingerprint = await fileFingerprint(file, body.length)
  server = createServer((req, res) => {
    if (req.url === '/good') {
      res.writeHead(200, { 'content-length': body.length }).end(body)
    } else if (req.url === '/tampered') {
      const copy = Buffer.from(body)
      copy[copy.length - 3] ^= 0xff
      res.writeHead(200, { 'content-length': copy.length }).end(copy)
    } else if (req.url === '/short') {
      // Chunked, so the server may end early without breaking HTTP framing.
      res.writeHead(200)
      res.end(body.subarray(0, body.length - 1))
    } else {
      res.writeHead(404).end('no such thing')
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

test.after(async () => {
  server.close()
  await rm(dir, { recursive: true, force: true })
})

test('a download counts the body and checks its first and last MiB against the file', async () => {
  const r = await download(`${base}/good`, { expectBytes: body.length, expectFingerprint: fingerprint })
  assert.is(r.bytes, body.length)
  assert.is(r.fingerprint, fingerprint)
  assert.ok(r.headersMs <= r.ttfbMs && r.ttfbMs <= r.firstMiBMs && r.firstMiBMs <= r.seconds * 1000)
  assert.ok(r.mbps > 0)
})

test('wrong, short and missing bodies fail the measurement instead of counting', async () => {
  await rejects(download(`${base}/tampered`, { expectBytes: body.length, expectFingerprint: fingerprint }), (err: unknown) => err instanceof HashMismatchError)
  await rejects(download(`${base}/short`, { expectBytes: body.length }), (err: unknown) => err instanceof UpstreamError && /expected/.test(err.message))
  await rejects(download(`${base}/missing`, { expectBytes: 1 }), (err: unknown) => err instanceof UpstreamError && /404/.test(err.message))
})

test('random files have the size asked for and differ from one another', async () => {
  const other = join(dir, 'other.bin')
  await makeRandomFile(other, 3 * MiB + 5)
  assert.is((await stat(other)).size, body.length)
  assert.is.not(await fileFingerprint(other, body.length), fingerprint)
  await rejects(requireFreeDisk(dir, Number.MAX_SAFE_INTEGER, 'a huge file'), (err: unknown) => err instanceof CapacityError)
})

test('peak memory of a process is read from /proc and catches a short-lived allocation', async () => {
  assert.is(parseStatusField('Name:\tnode\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n', 'VmHWM'), 2 * MiB)
  assert.is(parseStatusField('Name:\tnode\n', 'VmRSS'), undefined)
  const peak = new PeakRss(process.pid)
  await peak.start()
  const before = parseStatusField(await readFile('/proc/self/status', 'utf8'), 'VmRSS') ?? 0
  let big: Buffer | undefined = Buffer.alloc(128 * MiB, 1)
  assert.is(big[big.length - 1], 1)
  big = undefined
  const seen = await peak.stop()
  assert.ok(seen >= before + 100 * MiB, `peak ${seen} should include the 128 MiB allocation over ${before}`)
})

test.run()
