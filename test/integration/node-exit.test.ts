/**
 * Nodes that leave, and claims that do not count, on real processes: a
 * wrong join token stops `cdn node start` at once; `cdn node rm` makes the
 * node exit 0 with its blobs deleted (kept with --keep-data); forged
 * bad-copy reports change nothing, and the last holders of a content cannot
 * be removed.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, type ChildProcess } from 'node:child_process'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { decodeManifest } from '../../core/manifest.ts'
import { verifyRecord, type NodeListBody } from '../../core/signed-record.ts'
import { blobFiles, CDN, cdn, cdnJson, eventually, getJson, poolContents, poolNodes, randomFile, startNetwork, tempDir, type Network } from './harness.ts'

interface Ctx { net: Network, dir: string, extra: NodeProc[] }
const test = suite<Ctx>('nodes that leave; claims that do not count')

test.before(async (ctx) => {
  ctx.net = await startNetwork({ nodes: 3, extra: ['--heartbeat', '500ms', '--reconcile', '500ms', '--chunk-size', '256KiB', '--min-copies', '2'] })
  ctx.dir = await tempDir('node-exit')
  ctx.extra = []
})

test.after(async (ctx) => {
  for (const n of ctx.extra ?? []) await n.kill()
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

interface NodeProc {
  proc: ChildProcess
  data: string
  /** the ready line, parsed, once it came */
  ready: Promise<any>
  stdout: string[]
  stderr: () => string
  exited: Promise<number | null>
  kill: () => Promise<void>
}

/** `cdn node start` the way an operator runs it, logs off so what it prints is its own words. */
function startNode (net: Network, data: string, opts: { token?: string, extra?: string[] } = {}): NodeProc {
  const proc = spawn(process.execPath, [CDN, 'node', 'start', '--manager', net.managerMultiaddr,
    '--data', data, '--json', ...(opts.extra ?? [])], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CDN_LOG_LEVEL: 'silent', CDN_JOIN_TOKEN: opts.token ?? net.joinToken } })
  const stdout: string[] = []
  let stderr = ''
  proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString() })
  const lines = createInterface({ input: proc.stdout! })
  const ready = new Promise<any>((resolve, reject) => {
    lines.on('line', (line) => {
      stdout.push(line)
      if (stdout.length === 1) {
        try { resolve(JSON.parse(line)) } catch (err) { reject(err) }
      }
    })
    proc.once('exit', () => { reject(new Error(`node exited before its ready line: ${stderr}`)) })
  })
  ready.catch(() => {})
  const exited = new Promise<number | null>(resolve => proc.once('exit', (code) => { resolve(code) }))
  return {
    proc,
    data,
    ready,
    stdout,
    stderr: () => stderr,
    exited,
    async kill () {
      if (proc.exitCode != null || proc.signalCode != null) return
      proc.kill('SIGTERM')
      await exited
    }
  }
}

async function settle<T> (what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<T>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what} not within ${ms} ms`)) }, ms) })])
  } finally {
    clearTimeout(timer)
  }
}

test('a wrong join token stops cdn node start at once, non-zero, with one line', async (ctx) => {
  const n = startNode(ctx.net, join(ctx.dir, 'wrong-token'), { token: 'not-the-join-token' })
  const code = await settle('the refused node exiting', n.exited, 30_000)
  assert.is.not(code, 0)
  const lines = n.stderr().trim().split('\n')
  assert.is(lines.length, 1, n.stderr())
  assert.match(lines[0], /^cdn: join refused: /)
  assert.not.match(lines[0], /not-the-join-token/, 'the token is not echoed')
})

test('forged bad-copy reports change nothing, and the last holders of a content cannot be removed', async (ctx) => {
  const { net } = ctx
  const file = await randomFile(ctx.dir, 'precious.bin', 200 * 1024)
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile, '--replicas', '2'])
  const resolved = (await getJson(`${net.manager}/api/contents/${pub.id}`)).body
  const [chunk] = decodeManifest(Buffer.from(resolved.manifest, 'base64')).chunks
  const holders: string[] = resolved.holders.map((h: any) => h.peerId)
  assert.is(holders.length, 2)

  const answers: number[] = []
  for (let i = 0; i < 12; i++) {
    const res = await fetch(`${net.manager}/api/reports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ content: pub.id, chunk, node: holders[i % 2], reason: 'hash mismatch' })
    })
    answers.push(res.status)
    await res.arrayBuffer()
  }
  assert.ok(answers.every(s => s === 202 || s === 429), answers.join(','))
  await eventually('both accused copies checked and found intact', async () => {
    const events = (await getJson(`${net.manager}/api/events?limit=100`, net.adminToken)).body.events as any[]
    return holders.every(h => events.some(e => e.kind === 'bad-copy-rejected' && e.node === h && e.detail?.verdict === 'intact'))
  }, 30_000)
  const events = (await getJson(`${net.manager}/api/events?limit=200`, net.adminToken)).body.events as any[]
  assert.not.ok(events.some(e => e.kind === 'bad-copy-verified'), 'no report was believed')
  const listed = (await poolContents(net.manager, net.adminToken)).find(c => c.id === pub.id)
  assert.is(listed.copies.min, 2, 'both copies still count')

  for (const peer of holders) {
    const res = await fetch(`${net.manager}/api/nodes/${peer}`, { method: 'DELETE', headers: { authorization: `Bearer ${net.adminToken}` } })
    assert.is(res.status, 409)
    const body = await res.json() as any
    assert.match(body.error.message, /still needs|last copies/)
    assert.match(body.error.message, /drain it first/)
  }
  const left = (await poolNodes(net.manager, net.adminToken)).map(n => n.peerId)
  for (const peer of holders) assert.ok(left.includes(peer), 'still in the pool')
  assert.is((await getJson(`${net.manager}/api/contents/${pub.id}`)).body.holders.length, 2)
})

test('cdn node rm: the node exits 0 with one line and its blobs gone; with --keep-data they stay', async (ctx) => {
  const { net } = ctx
  const wiped = startNode(net, join(ctx.dir, 'wiped'))
  const kept = startNode(net, join(ctx.dir, 'kept'), { extra: ['--keep-data'] })
  ctx.extra.push(wiped, kept)
  const [w, k] = await Promise.all([wiped.ready, kept.ready])
  await eventually('both extra nodes joined', async () => {
    const alive = (await poolNodes(net.manager, net.adminToken)).filter(n => n.state === 'alive').map(n => n.peerId)
    return alive.includes(w.peerId) && alive.includes(k.peerId)
  }, 30_000)
  // A copy on every node: each extra one holds blobs, and each can still go (four copies stay).
  const file = await randomFile(ctx.dir, 'everywhere.bin', 600 * 1024)
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile, '--replicas', '5'])
  assert.ok((await blobFiles(wiped.data)).size > 0 && (await blobFiles(kept.data)).size > 0, 'both hold blobs')

  const r1 = await cdnJson(['node', 'rm', w.peerId, '--manager', net.manager, '--token-file', net.adminTokenFile])
  assert.is(r1.removed, true)
  assert.is(await settle('the removed node exiting', wiped.exited, 30_000), 0)
  assert.is(wiped.stdout.length, 2, wiped.stdout.join('\n'))
  assert.match(wiped.stdout[1], /removed from the pool/)
  assert.is((await blobFiles(wiped.data)).size, 0, 'its data directory holds no blobs')

  const keptBlobs = await blobFiles(kept.data)
  const r2 = await cdn(['node', 'rm', k.peerId, '--manager', net.manager, '--token-file', net.adminTokenFile])
  assert.is(r2.code, 0, r2.stderr)
  assert.is(await settle('the removed node exiting', kept.exited, 30_000), 0)
  assert.match(kept.stdout[1], /kept/)
  assert.equal([...(await blobFiles(kept.data)).keys()].sort(), [...keptBlobs.keys()].sort(), '--keep-data kept every blob')

  // Started again from its directory, a removed node refuses to serve.
  const again = startNode(net, kept.data, { extra: ['--keep-data'] })
  ctx.extra.push(again)
  assert.is.not(await settle('the restarted removed node exiting', again.exited, 30_000), 0)
  assert.match(again.stderr(), /was removed from the pool/)
  const left = (await poolNodes(net.manager, net.adminToken)).map(n => n.peerId)
  assert.not.ok(left.includes(w.peerId) || left.includes(k.peerId))
  assert.is((await poolContents(net.manager, net.adminToken)).find(c => c.id === pub.id)?.copies.min, 3)

  // The signed node list no longer vouches for them.
  const info = (await getJson(`${net.manager}/api/info`)).body
  const { list } = (await getJson(`${net.manager}/api/pool/nodes`)).body
  const verified = await verifyRecord<NodeListBody>(list, { kind: 'node-list', trusted: [info.pool] })
  assert.equal(verified.body.nodes.map(n => n.peerId).sort(), [...left].sort())
})

test.run()
