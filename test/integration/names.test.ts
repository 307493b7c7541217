/**
 * Names and generations through `cdn up`, real processes on loopback: a name
 * served by the proxy at /n/<name> follows each new generation (Range
 * included), another publisher is refused the name, `cdn versions` and
 * `cdn get NAME --at` see the generations, --keep deletes older ones through
 * the normal delete path, and with the manager stopped the proxy still
 * answers the name from its kept record.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { request } from 'node:http'
import { join } from 'node:path'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { cdn, cdnJson, eventually, randomFile, startNetwork, type Network } from './harness.ts'

const MiB = 1024 * 1024
const NAME = 'films/launch.bin'

let net: Network
test.before(async () => { net = await startNetwork({ nodes: 3 }) })
test.after(async () => { await net?.stop() })

const auth = (): string[] => ['--manager', net.manager, '--token-file', net.tokenFile]
const api = (): string[] => [...auth(), '--proxy', net.proxy]

async function publishGeneration (file: string, extra: string[] = []): Promise<any> {
  return await cdnJson(['publish', file, '--name', NAME, ...extra, ...api()])
}

async function getName (headers: Record<string, string> = {}): Promise<{ status: number, body: Buffer, headers: Headers }> {
  const res = await fetch(`${net.proxy}/n/${NAME}`, { headers })
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers }
}

/** What a browser configured with the PAC file sends: an absolute URL, to the proxy. */
async function absoluteGet (target: string): Promise<{ status: number, body: Buffer, headers: Record<string, string | string[] | undefined> }> {
  const u = new URL(net.proxy)
  return await new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: target, headers: { host: new URL(target).host }, signal: AbortSignal.timeout(60_000) }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (d: Buffer) => parts.push(d))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts), headers: res.headers }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

test('a name follows its generations at /n/<name>, with Range; another publisher is refused; keep deletes the oldest', async () => {
  const files = [
    await randomFile(net.dir, 'v1.bin', Math.round(1.5 * MiB)),
    await randomFile(net.dir, 'v2.bin', 2 * MiB + 17),
    await randomFile(net.dir, 'v3.bin', MiB + 5)
  ]
  const bytes = await Promise.all(files.map(async f => await readFile(f)))

  const g1 = await publishGeneration(files[0], ['--keep', '2'])
  assert.equal([g1.name, g1.seq], [NAME, 1])
  const first = await getName()
  assert.is(first.status, 200)
  assert.ok(first.body.equals(bytes[0]), 'the first generation\'s bytes')
  assert.is(first.headers.get('x-cdn-generation'), '1')
  assert.is(first.headers.get('etag'), `"${g1.id}"`)
  assert.match(first.headers.get('cache-control') ?? '', /no-cache/)
  const range = await getName({ range: 'bytes=1048570-1048600' })
  assert.is(range.status, 206)
  assert.ok(range.body.equals(bytes[0].subarray(1048570, 1048601)))
  // The browser's copy is the current generation: revalidated, not sent again.
  assert.is((await getName({ 'if-none-match': `"${g1.id}"` })).status, 304)
  // A browser that uses the proxy as its HTTP proxy (the PAC file) reaches names at http://n.cdn/<name>.
  const viaProxy = await absoluteGet(`http://n.cdn/${NAME}`)
  assert.is(viaProxy.status, 200)
  assert.ok(viaProxy.body.equals(bytes[0]), 'n.cdn serves the name')
  assert.is(viaProxy.headers['x-cdn-generation'], '1')

  const g2 = await publishGeneration(files[1])
  assert.is(g2.seq, 2)
  await eventually('/n/<name> to serve the second generation', async () => {
    const r = await getName()
    return r.status === 200 && r.headers.get('x-cdn-generation') === '2' && r.body.equals(bytes[1])
  }, 60_000)

  // Another publisher may not take the name over.
  const carol = await cdnJson(['token', 'create', '--role', 'publisher', '--name', 'carol', '--manager', net.manager, '--token-file', net.adminTokenFile])
  const carolFile = join(net.dir, 'carol.token')
  await (await import('node:fs/promises')).writeFile(carolFile, `${carol.token}\n`, { mode: 0o600 })
  const refused = await cdn(['publish', files[2], '--name', NAME, '--manager', net.manager, '--token-file', carolFile, '--proxy', net.proxy])
  assert.is.not(refused.code, 0)
  assert.match(refused.stderr, /ERR_FORBIDDEN/)
  assert.match(refused.stderr, /belongs to another publisher/)

  const listed = await cdnJson(['versions', NAME, ...auth()])
  assert.equal(listed.generations.map((g: any) => [g.seq, g.content, g.size]), [[1, g1.id, bytes[0].length], [2, g2.id, bytes[1].length]])
  assert.is(listed.keep, 2)

  // An older generation by number and by time.
  const out = join(net.dir, 'at1.bin')
  await cdnJson(['get', NAME, '--at', '1', '-o', out, ...auth()])
  assert.ok((await readFile(out)).equals(bytes[0]), 'cdn get --at 1 gives the first generation')
  const at = join(net.dir, 'at-time.bin')
  await cdnJson(['get', NAME, '--at', listed.generations[0].createdAt, '-o', at, ...auth()])
  assert.ok((await readFile(at)).equals(bytes[0]), 'cdn get --at <time of the first> gives the first generation')
  const latest = join(net.dir, 'latest.bin')
  await cdnJson(['get', NAME, '-o', latest, '--manager', net.manager])
  assert.ok((await readFile(latest)).equals(bytes[1]), 'cdn get NAME gives the newest generation')

  // The third generation with keep 2: the first one's content is deleted everywhere.
  const g3 = await publishGeneration(files[2])
  assert.is(g3.seq, 3)
  const gone = await fetch(`${net.manager}/api/contents/${g1.id}`)
  assert.is(gone.status, 404)
  await gone.arrayBuffer()
  const after = await cdnJson(['versions', NAME, ...auth()])
  assert.equal(after.generations.map((g: any) => g.seq), [2, 3])
  const ls = await cdnJson(['ls', ...auth()])
  assert.not.ok(ls.contents.some((c: any) => c.id === g1.id), 'the pruned generation is no longer listed')
  await eventually('/n/<name> to serve the third generation', async () => {
    const r = await getName()
    return r.status === 200 && r.headers.get('x-cdn-generation') === '3' && r.body.equals(bytes[2])
  }, 60_000)
})

test('a private name shared with cdn share NAME opens through the proxy, the generations published later too', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdn-names-private-'))
  try {
    const files = [await randomFile(dir, 'v1.bin', MiB + 77), await randomFile(dir, 'v2.bin', MiB + 78)]
    await cdnJson(['publish', files[0], '--name', 'diary/entries.bin', '--private', ...api()])
    assert.ok([401, 403].includes((await fetch(`${net.proxy}/n/diary/entries.bin`)).status), 'private: nothing without a capability')
    const shared = await cdnJson(['share', 'diary/entries.bin', ...api()])
    const open = async (): Promise<Buffer> => {
      const res = await fetch(shared.url)
      assert.is(res.status, 200)
      return Buffer.from(await res.arrayBuffer())
    }
    assert.ok((await open()).equals(await readFile(files[0])))
    await cdnJson(['publish', files[1], '--name', 'diary/entries.bin', '--private', ...api()])
    await eventually('the same link opens the new generation', async () => (await open()).equals(await readFile(files[1])), 30_000)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('with the manager stopped, /n/<name> answers from the proxy\'s kept record', async () => {
  const before = await getName()
  assert.is(before.status, 200)
  const seq = before.headers.get('x-cdn-generation')
  process.kill(net.managerPid, 'SIGKILL')
  await eventually('the manager to be gone', async () => {
    try {
      await fetch(`${net.manager}/api/info`, { signal: AbortSignal.timeout(2000) })
      return false
    } catch {
      return true
    }
  }, 30_000)
  // Once the record is no longer fresh, the proxy asks, gets no answer, and answers from what it kept.
  await eventually('/n/<name> answered from the kept record', async () => {
    const r = await getName()
    return r.status === 200 && r.headers.get('x-cdn-name-from') === 'kept' && r.headers.get('x-cdn-generation') === seq && r.body.equals(before.body)
  }, 60_000)
})

test.run()
