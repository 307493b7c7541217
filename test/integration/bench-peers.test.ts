/**
 * The peers the benchmarks compare us with, run the way `npm run bench` runs
 * them (each its own process on loopback) on a small file: the plain HTTP
 * origin and Helia providers with a Helia fetcher must hand back the exact
 * bytes, or every figure measured against them would be meaningless.
 */
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startChild, type Child } from '../../bench/child.ts'
import type { TestFile } from '../../bench/context.ts'
import { download, fileFingerprint } from '../../bench/download.ts'
import { makeRandomFile } from '../../bench/files.ts'
import { heliaFetch, startProviders } from '../../bench/helia-swarm.ts'

const MiB = 1024 * 1024
let dir: string
let file: TestFile
const children: Child[] = []

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdn-bench-peers-'))
  const path = join(dir, 'content.bin')
  const size = 5 * MiB + 123
  await makeRandomFile(path, size)
  file = { path, size, fingerprint: await fileFingerprint(path, size) }
})

test.after(async () => {
  for (const c of children.reverse()) await c.stop()
  await rm(dir, { recursive: true, force: true })
})

test('the origin server streams the file as it is on disk', async () => {
  const origin = await startChild({ role: 'origin', args: [join(import.meta.dirname, '..', '..', 'bench', 'origin-server.ts'), '--file', file.path], logFile: join(dir, 'origin.log') })
  children.push(origin)
  assert.match(String(origin.info.http), /^http:\/\/127\.0\.0\.1:\d+$/)
  const r = await download(`${origin.info.http}/file`, { expectBytes: file.size, expectFingerprint: file.fingerprint })
  assert.is(r.bytes, file.size)
})

test('a Helia fetcher gets the exact file from two Helia providers over loopback', async () => {
  const providers = await startProviders(2, file, dir)
  children.push(...providers)
  for (const p of providers) {
    assert.ok((p.info.multiaddrs as string[]).every(a => a.startsWith('/ip4/127.0.0.1/')), 'providers listen on loopback only')
  }
  // heliaFetch fails unless the byte count and the first and last MiB match the file.
  const r = await heliaFetch(providers, file, join(dir, 'fetcher.log'), 120_000)
  assert.is(r.stalled, false)
  if (!r.stalled) assert.ok(r.peakRss > 0)
})

test.run()
