/**
 * Differential upload end to end (`cdn up`, real processes on loopback):
 * `cdn publish FILE --name NAME` sends only the chunks the name lacks. An
 * insertion at the start sends about the edit, an unchanged file almost
 * nothing, a file that grew about what was appended, and an upload stopped
 * halfway (a session opened and half filled by hand) is finished by running
 * the command: it sends only the rest. Every generation reads back through
 * the proxy at /n/<name> byte for byte.
 */
import { randomBytes } from 'node:crypto'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { CDC_DEFAULTS } from '../../core/cdc-chunker.ts'
import { planFile } from '../../cli/file-chunks.ts'
import { cdnJson, eventually, startNetwork, tempDir, type Network } from './harness.ts'

const KiB = 1024
const MiB = 1024 * KiB
const REPLICAS = '2'

const test = suite<{ net: Network, dir: string }>('differential publish')

test.before(async (ctx) => {
  ctx.net = await startNetwork({ nodes: 3 })
  ctx.dir = await tempDir('differential')
})

test.after(async (ctx) => {
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

async function fileOf (dir: string, name: string, bytes: Buffer): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, bytes)
  return path
}

async function publishNamed (net: Network, file: string, name: string): Promise<any> {
  return await cdnJson(['publish', file, '--name', name, '--replicas', REPLICAS, '--manager', net.manager, '--token-file', net.tokenFile, '--proxy', net.proxy])
}

/** Waits until the proxy serves generation `seq` of the name, and checks its bytes. */
async function readsBack (net: Network, name: string, seq: number, bytes: Buffer): Promise<void> {
  let last = ''
  await eventually(`/n/${name} to serve generation ${seq}`, async () => {
    const res = await fetch(`${net.proxy}/n/${name}`, { signal: AbortSignal.timeout(60_000) })
    const body = Buffer.from(await res.arrayBuffer())
    last = `${res.status} generation ${res.headers.get('x-cdn-generation')}, ${body.length} bytes`
    return res.status === 200 && res.headers.get('x-cdn-generation') === String(seq) && body.length === bytes.length
  }, 60_000, 500).catch((err) => { throw new Error(`${err.message} (last: ${last})`) })
  const res = await fetch(`${net.proxy}/n/${name}`, { signal: AbortSignal.timeout(60_000) })
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(bytes), `generation ${seq} of ${name} reads back byte for byte`)
}

test('4 KiB inserted at the start sends about the edit; the same file again sends almost nothing', async ({ net, dir }) => {
  const name = 'diff/insert.bin'
  const base = randomBytes(24 * MiB)
  const first = await publishNamed(net, await fileOf(dir, 'base.bin', base), name)
  assert.is(first.uploadedBytes, base.length, 'a new name: every byte is sent')
  assert.is(first.reusedChunks, 0)

  const edited = Buffer.concat([randomBytes(4 * KiB), base])
  const editedFile = await fileOf(dir, 'edited.bin', edited)
  const second = await publishNamed(net, editedFile, name)
  assert.is(second.seq, first.seq + 1)
  assert.is(second.size, edited.length)
  assert.ok(second.uploadedBytes <= 4 * KiB + 3 * MiB, `sent ${second.uploadedBytes} bytes for a 4 KiB insertion`)
  assert.ok(second.reusedChunks >= second.chunks - 4, `${second.reusedChunks} of ${second.chunks} chunks reused`)
  await readsBack(net, name, second.seq, edited)

  const third = await publishNamed(net, editedFile, name)
  assert.is(third.seq, second.seq + 1)
  assert.ok(third.uploadedBytes <= edited.length / 100, `sent ${third.uploadedBytes} bytes for an unchanged file`)
  assert.is(third.reusedChunks, third.chunks)
  await readsBack(net, name, third.seq, edited)
})

test('a file that grew by 10 MiB sends about what was appended', async ({ net, dir }) => {
  const name = 'diff/grow.bin'
  const base = randomBytes(16 * MiB)
  const first = await publishNamed(net, await fileOf(dir, 'grow-1.bin', base), name)
  const grown = Buffer.concat([base, randomBytes(10 * MiB)])
  const second = await publishNamed(net, await fileOf(dir, 'grow-2.bin', grown), name)
  assert.is(second.seq, first.seq + 1)
  assert.ok(second.uploadedBytes >= 10 * MiB && second.uploadedBytes <= 13 * MiB, `sent ${second.uploadedBytes} bytes for 10 MiB appended`)
  await readsBack(net, name, second.seq, grown)
})

test('an upload stopped halfway is finished by running the command again: only the rest is sent', async ({ net, dir }) => {
  const name = 'diff/resume.bin'
  const bytes = randomBytes(16 * MiB + 333)
  const file = await fileOf(dir, 'resume.bin', bytes)
  const chunks = await planFile(file)
  const uploads = `${net.manager}/api/names/${encodeURIComponent(name)}/uploads`
  const auth = { authorization: `Bearer ${net.token}` }

  // The first attempt, by hand: the plan, then half of the missing chunks, then it stops.
  const opened = await fetch(uploads, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ chunks: chunks.map(c => ({ hash: c.hash, size: c.size })), file: name, type: 'application/octet-stream', replicas: Number(REPLICAS) }),
    signal: AbortSignal.timeout(120_000)
  })
  assert.is(opened.status, 200, await opened.clone().text())
  const session = await opened.json()
  assert.equal(session.missing, chunks.map(c => c.index), 'a new name lacks every chunk')
  const half = session.missing.slice(0, Math.floor(session.missing.length / 2))
  for (const index of half) {
    const c = chunks[index]
    const res = await fetch(`${uploads}/${encodeURIComponent(session.upload)}/chunks/${index}`, {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      body: bytes.subarray(c.offset, c.offset + c.size),
      signal: AbortSignal.timeout(120_000)
    })
    assert.is(res.status, 200, await res.clone().text())
    assert.is((await res.json()).stored, true)
  }
  const sentByHand = half.reduce((sum: number, i: number) => sum + chunks[i].size, 0)
  const remaining = bytes.length - sentByHand
  assert.ok(sentByHand > 0 && remaining > 0)

  const done = await publishNamed(net, file, name)
  assert.ok(done.uploadedBytes > 0, 'the rest was sent')
  assert.ok(done.uploadedBytes <= remaining + CDC_DEFAULTS.max, `sent ${done.uploadedBytes} bytes, ${remaining} were left`)
  assert.ok(done.reusedChunks >= half.length - 1, `${done.reusedChunks} chunks reused, ${half.length} sent by hand`)
  assert.is(done.size, bytes.length)
  await readsBack(net, name, done.seq, bytes)
})

test.run()
