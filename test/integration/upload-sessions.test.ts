/**
 * Upload sessions on the manager's side, through `cdn up` (real processes
 * on loopback), spoken to over plain HTTP as a publisher's client would:
 * only chunks a name lacks are asked for, a chunk that does not match its
 * hash is refused, a commit with chunks missing names them, equal chunks of
 * one name are one blob on the nodes, and deleting an older generation
 * (keep) spares the blobs the newer one shares.
 */
import { createHash, randomBytes } from 'node:crypto'
import { test } from 'uvu'
import * as assert from 'uvu/assert'
import { blobFiles, cdnJson, eventually, startNetwork, type Network } from './harness.ts'

const KiB = 1024
const NAME = 'logs/sessions.bin'

let net: Network
test.before(async () => { net = await startNetwork({ nodes: 3 }) })
test.after(async () => { await net?.stop() })

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

test.run()
