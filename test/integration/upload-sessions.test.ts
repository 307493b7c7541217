/**
 * Upload sessions on the manager's side, through `cdn up` (real processes
 * on loopback), spoken to over plain HTTP as a publisher's client would:
 * only chunks a name lacks are asked for, a chunk that does not match its
 * hash is refused, a commit with chunks missing names them, equal chunks of
 * one name are one blob on the nodes, and deleting an older generation
 * (keep) spares the blobs the newer one shares.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { rm, stat } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { blobFiles, CDN, cdnJson, eventually, startNetwork, type Network, type NetworkNode } from './harness.ts'

const KiB = 1024
const NAME = 'logs/sessions.bin'

let net: Network
const restarted: ChildProcess[] = []
test.before(async () => { net = await startNetwork({ nodes: 3 }) })
test.after(async () => {
  for (const p of restarted) {
    if (p.exitCode != null || p.signalCode != null) continue
    const exited = new Promise(resolve => p.once('exit', resolve))
    p.kill('SIGTERM')
    await exited
  }
  await net?.stop()
})

interface Call { status: number, body: any }

async function call (method: string, path: string, body?: Uint8Array | object, token = net.token): Promise<Call> {
  const raw = body instanceof Uint8Array
  const res = await fetch(`${net.manager}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body != null && !raw ? { 'content-type': 'application/json' } : {}) },
    body: body == null ? undefined : raw ? Buffer.from(body) as unknown as BodyInit : JSON.stringify(body),
    signal: AbortSignal.timeout(120_000)
  })
  return { status: res.status, body: await res.json() }
}

const base = `/api/names/${encodeURIComponent(NAME)}/uploads`

function planOf (chunks: Buffer[], extra: object = {}): object {
  return { chunks: chunks.map(c => ({ hash: createHash('sha256').update(c).digest('hex'), size: c.length })), file: 'sessions.bin', type: 'application/octet-stream', replicas: 2, ...extra }
}

async function send (upload: string, chunks: Buffer[], indexes: number[]): Promise<void> {
  for (const i of indexes) {
    const r = await call('PUT', `${base}/${upload}/chunks/${i}`, chunks[i])
    assert.is(r.status, 200, JSON.stringify(r.body))
    assert.is(r.body.stored, true)
  }
}

/** Waits until the proxy's `/n/<name>` serves `bytes` (it rechecks a name's record now and then, not at every request). */
async function nameServes (bytes: Buffer): Promise<void> {
  await eventually(`/n/${NAME} to serve the newest generation`, async () => {
    const res = await fetch(`${net.proxy}/n/${NAME}`, { signal: AbortSignal.timeout(60_000) })
    return res.status === 200 && Buffer.from(await res.arrayBuffer()).equals(bytes)
  }, 60_000)
}

/** Chunk blobs (raw CIDs) on all nodes, manifests aside: those go to every holder. */
async function chunkBlobsOnNodes (): Promise<number> {
  let n = 0
  for (const node of net.nodes) n += [...(await blobFiles(node.data)).keys()].filter(f => f.startsWith('bafkrei')).length
  return n
}

test('a second generation sends only its new chunk; keep deletes the first and spares what they share', async () => {
  const v1 = [randomBytes(300 * KiB), randomBytes(200 * KiB), randomBytes(250 * KiB), randomBytes(100 * KiB)]
  const opened = await call('POST', base, planOf(v1, { keep: 1 }))
  assert.is(opened.status, 200, JSON.stringify(opened.body))
  assert.equal(opened.body.missing, [0, 1, 2, 3])
  assert.is(opened.body.missingBytes, 850 * KiB)
  const upload = opened.body.upload

  // Bytes that are not the announced chunk are refused, and nothing is stored.
  const wrong = await call('PUT', `${base}/${upload}/chunks/1`, randomBytes(200 * KiB))
  assert.is(wrong.status, 400)
  assert.match(wrong.body.error.message, /does not match the hash/)

  await send(upload, v1, [0, 1])
  const early = await call('POST', `${base}/${upload}/commit`)
  assert.is(early.status, 409)
  assert.is(early.body.error.code, 'ERR_MISSING_CHUNKS')
  assert.equal(early.body.error.missing, [2, 3])

  await send(upload, v1, [2, 3])
  const g1 = await call('POST', `${base}/${upload}/commit`)
  assert.is(g1.status, 201, JSON.stringify(g1.body))
  assert.equal([g1.body.seq, g1.body.size, g1.body.uploadedBytes, g1.body.reusedChunks], [1, 850 * KiB, 850 * KiB, 0])
  await nameServes(Buffer.concat(v1))
  // Four chunks, two copies each.
  assert.is(await chunkBlobsOnNodes(), 8)

  // The second generation changes one chunk and repeats another.
  const v2 = [v1[0], v1[1], randomBytes(40 * KiB), v1[3], v1[0]]
  const again = await call('POST', base, planOf(v2, { keep: 1 }))
  assert.equal(again.body.missing, [2])
  assert.is(again.body.resumed, false)
  await send(again.body.upload, v2, [2])
  const g2 = await call('POST', `${base}/${again.body.upload}/commit`)
  assert.is(g2.status, 201, JSON.stringify(g2.body))
  assert.equal([g2.body.seq, g2.body.uploadedBytes, g2.body.reusedChunks], [2, 40 * KiB, 3])
  assert.is(g2.body.pruned, 1)
  await nameServes(Buffer.concat(v2))

  // keep 1 deleted the first generation: its unshared chunk left the nodes, the shared ones stayed (one new chunk came).
  await eventually('the first generation\'s own chunk to go', async () => await chunkBlobsOnNodes() === 8)
  const listed = await cdnJson(['versions', NAME, '--manager', net.manager, '--token-file', net.tokenFile])
  assert.equal(listed.generations.map((g: any) => [g.seq, g.size, g.added]), [[2, 940 * KiB, 40 * KiB]])
  // Through a fresh read (the proxy's cache aside), every chunk of the second generation is still served.
  const ranged = await fetch(`${net.proxy}/n/${NAME}`, { headers: { range: `bytes=${300 * KiB}-${500 * KiB - 1}` } })
  assert.is(ranged.status, 206)
  assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(v1[1]))
})

test('an interrupted session resumes: asked again, it wants only what was not stored', async () => {
  const chunks = [randomBytes(120 * KiB), randomBytes(130 * KiB), randomBytes(140 * KiB)]
  const first = await call('POST', base, planOf(chunks))
  await send(first.body.upload, chunks, [first.body.missing[0]])
  const resumed = await call('POST', base, planOf(chunks))
  assert.is(resumed.body.upload, first.body.upload)
  assert.is(resumed.body.resumed, true)
  assert.equal(resumed.body.missing, first.body.missing.slice(1))
  await send(resumed.body.upload, chunks, resumed.body.missing)
  const done = await call('POST', `${base}/${resumed.body.upload}/commit`)
  assert.is(done.status, 201, JSON.stringify(done.body))
  await nameServes(Buffer.concat(chunks))
})

test('another publisher is refused the name before sending anything; bad plans get a clear 400', async () => {
  const carol = await cdnJson(['token', 'create', '--role', 'publisher', '--name', 'carol-sessions', '--manager', net.manager, '--token-file', net.adminTokenFile])
  const refused = await call('POST', base, planOf([randomBytes(10)]), carol.token)
  assert.is(refused.status, 403)
  assert.match(refused.body.error.message, /belongs to another publisher/)
  const bad = await call('POST', base, { chunks: [{ hash: 'abc', size: 1 }], file: 'x', type: 'text/plain' })
  assert.is(bad.status, 400)
  assert.match(bad.body.error.message, /chunks\[0\]\.hash/)
  const huge = await call('POST', base, { chunks: [{ hash: '0'.repeat(64), size: 64 * 1024 * 1024 }], file: 'x', type: 'text/plain' })
  assert.is(huge.status, 400)
  const unknown = await call('POST', `${base}/upload-00000000-0000-0000-0000-000000000000/commit`)
  assert.is(unknown.status, 404)
})

/** Stops a node of the network for good (it was started by `cdn up --no-restart`), waiting until its process is gone. */
async function killNode (pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL')
  await eventually('the node to be gone', async () => {
    try {
      process.kill(pid, 0)
      return false
    } catch {
      return true
    }
  })
}

/** Starts a node again from its data directory (same identity, same ports). */
async function restartNode (node: NetworkNode): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [CDN, 'node', 'start', '--manager', net.managerMultiaddr, '--data', node.data, '--json'],
    { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, CDN_LOG_LEVEL: 'silent', CDN_JOIN_TOKEN: net.joinToken } })
  restarted.push(proc)
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', () => { resolve() })
    proc.once('exit', (code) => { reject(new Error(`node exited with ${code}`)) })
  })
  return proc
}

test('a held chunk a holder lost before the commit is asked for again, and the generation is whole', async () => {
  const name = 'race/lost.bin'
  const at = `/api/names/${encodeURIComponent(name)}/uploads`
  const v1 = [randomBytes(150 * KiB), randomBytes(160 * KiB)]
  const first = await call('POST', at, planOf(v1))
  for (const i of first.body.missing) assert.is((await call('PUT', `${at}/${first.body.upload}/chunks/${i}`, v1[i])).status, 200)
  assert.is((await call('POST', `${at}/${first.body.upload}/commit`)).status, 201)

  // The next generation counts both chunks as held...
  const v2 = [...v1, randomBytes(30 * KiB)]
  const second = await call('POST', at, planOf(v2))
  assert.equal(second.body.missing, [2])
  // ...then a holder loses one of them before the new manifest reaches it (as a drop or the GC would take a chunk
  // no manifest of its own names any more). The catalog is not told.
  const holder = await holderOfChunks(v1.length)
  await killNode(holder.node.pid)
  await rm(holder.chunkFile)
  await restartNode(holder.node)
  assert.is((await call('PUT', `${at}/${second.body.upload}/chunks/2`, v2[2])).status, 200)

  // The commit finds the loss in the holder's have-bitmap once the manifest is there, and names the chunk.
  let commit: Call = { status: 0, body: null }
  await eventually('the commit to be answered by the restarted pool', async () => {
    commit = await call('POST', `${at}/${second.body.upload}/commit`)
    return commit.status < 500
  }, 60_000)
  assert.is(commit.status, 409, JSON.stringify(commit.body))
  const lost: number[] = commit.body.error.missing
  assert.is(lost.length, 1)
  assert.ok(lost[0] < v1.length)
  assert.is((await call('PUT', `${at}/${second.body.upload}/chunks/${lost[0]}`, v2[lost[0]])).status, 200)
  const done = await call('POST', `${at}/${second.body.upload}/commit`)
  assert.is(done.status, 201, JSON.stringify(done.body))
  const res = await fetch(`${net.proxy}/c/${done.body.id}?k=${done.body.key}`, { signal: AbortSignal.timeout(60_000) })
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(Buffer.concat(v2)), 'the generation reads back whole')
})

/** A node holding a chunk blob, and that blob's file; the chunks of `race/lost.bin`'s first generation are the newest on disk. */
async function holderOfChunks (count: number): Promise<{ node: NetworkNode, chunkFile: string }> {
  const newest: Array<{ node: NetworkNode, file: string, mtime: number }> = []
  for (const node of net.nodes) {
    for (const [name, path] of await blobFiles(node.data)) {
      if (name.startsWith('bafkrei')) newest.push({ node, file: path, mtime: (await stat(path)).mtimeMs })
    }
  }
  newest.sort((a, b) => b.mtime - a.mtime)
  // R = 2 copies of each of the generation's chunks were the last chunk blobs written.
  const pick = newest.slice(0, 2 * count)[0]
  return { node: pick.node, chunkFile: pick.file }
}

test('a publish streamed under a name (x-cdn-publish-name) stores only the chunks the name lacks', async () => {
  const name = 'streams/same.bin'
  const body = randomBytes(3 * 1024 * KiB + 123)
  const stream = async (bytes: Buffer): Promise<Call> => {
    const res = await fetch(`${net.manager}/api/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${net.token}`, 'x-cdn-publish-name': encodeURIComponent(name), 'x-cdn-replicas': '2', 'content-type': 'application/octet-stream' },
      body: bytes as unknown as BodyInit,
      signal: AbortSignal.timeout(120_000)
    })
    return { status: res.status, body: await res.json() }
  }
  const first = await stream(body)
  assert.is(first.status, 201, JSON.stringify(first.body))
  const stored = await chunkBlobsOnNodes()
  const second = await stream(body)
  assert.is(second.status, 201, JSON.stringify(second.body))
  assert.is(second.body.seq, 2)
  assert.is.not(second.body.id, first.body.id, 'a generation of its own')
  assert.is(await chunkBlobsOnNodes(), stored, 'no chunk stored twice')
  const listed = await cdnJson(['versions', name, '--manager', net.manager, '--token-file', net.tokenFile])
  assert.equal(listed.generations.map((g: any) => g.added), [body.length, 0])
  const res = await fetch(`${net.proxy}/c/${second.body.id}?k=${second.body.key}`)
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(body), 'the second generation reads back')
})

test.run()
