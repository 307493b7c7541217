/**
 * The manager killed with -9 at the worst moments, then started again from
 * its directory on the same addresses: a publish it was in the middle of
 * leaves nothing visible and its blobs are collected from the nodes; a
 * delete it was in the middle of is finished on every node.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { decodeManifest } from '../../core/manifest.ts'
import { blobFiles, CDN, cdnJson, eventually, getJson, poolContents, randomFile, startNetwork, tempDir, type Network, type NetworkNode } from './harness.ts'

const HEARTBEAT = '1s'

interface Ctx { net: Network, dir: string, manager?: ChildProcess, kept: Set<string> }
const test = suite<Ctx>('manager kill -9')

test.before(async (ctx) => {
  ctx.net = await startNetwork({ nodes: 4, extra: ['--heartbeat', HEARTBEAT, '--reconcile', '1s', '--chunk-size', '256KiB', '--replicas', '3'] })
  ctx.dir = await tempDir('manager-restart')
  ctx.kept = new Set()
})

test.after(async (ctx) => {
  for (const n of ctx.net?.nodes ?? []) {
    try { process.kill(n.pid, 'SIGCONT') } catch {}
  }
  await stopManager(ctx)
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

function managerPid (ctx: Ctx): number {
  return ctx.manager?.pid ?? ctx.net.managerPid
}

async function stopManager (ctx: Ctx): Promise<void> {
  const p = ctx.manager
  if (p == null || p.exitCode != null || p.signalCode != null) return
  const exited = new Promise(resolve => p.once('exit', resolve))
  p.kill('SIGTERM')
  await exited
}

async function killManager (ctx: Ctx): Promise<void> {
  const pid = managerPid(ctx)
  process.kill(pid, 'SIGKILL')
  await eventually('the manager is gone', async () => {
    try {
      await fetch(`${ctx.net.manager}/api/info`, { signal: AbortSignal.timeout(1000) })
      return false
    } catch {
      return true
    }
  }, 10_000, 50)
}

/** `cdn manager start` again on its directory, HTTP port and libp2p address, as an operator (or systemd) would. */
async function restartManager (ctx: Ctx): Promise<void> {
  const port = new URL(ctx.net.manager).port
  const p2p = /\/tcp\/(\d+)\//.exec(ctx.net.managerMultiaddr)![1]
  const proc = spawn(process.execPath, [CDN, 'manager', 'start', '--dir', join(ctx.net.dir, 'manager'), '--http-port', port,
    '--listen', `/ip4/127.0.0.1/tcp/${p2p}`,
    '--heartbeat', HEARTBEAT, '--reconcile', '1s', '--replicas', '3', '--json'], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, CDN_LOG_LEVEL: 'silent', CDN_PUBLISHER_TOKENS: ctx.net.token, CDN_JOIN_TOKENS: ctx.net.joinToken } })
  ctx.manager = proc
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve)
    proc.once('exit', (code) => { reject(new Error(`the restarted manager exited with ${code}`)) })
  })
  assert.is(JSON.parse(line).multiaddrs[0], ctx.net.managerMultiaddr, 'same identity and address')
}

/** Every blob on every node's disk. */
async function allBlobs (ctx: Ctx): Promise<Set<string>> {
  const out = new Set<string>()
  for (const n of ctx.net.nodes) for (const b of (await blobFiles(n.data)).keys()) out.add(b)
  return out
}

test('kill -9 mid-publish: after the restart nothing of it is visible and its blobs leave the nodes', async (ctx) => {
  const { net } = ctx
  const file = await randomFile(ctx.dir, 'kept.bin', 300 * 1024)
  const kept = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
  for (const b of await allBlobs(ctx)) ctx.kept.add(b)

  // An upload that stops sending once some of its chunks sit on nodes, then the manager dies under it.
  let killed!: () => void
  const dead = new Promise<void>((resolve) => { killed = resolve })
  const body = (async function * () {
    for (let i = 0; i < 64; i++) {
      yield randomBytes(256 * 1024)
      if (i === 8) {
        await eventually('chunks of the upload on the nodes', async () => [...await allBlobs(ctx)].filter(b => !ctx.kept.has(b)).length >= 6, 30_000)
        await killManager(ctx)
        killed()
        return
      }
    }
  })()
  await request(`${net.manager}/api/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${net.token}`, 'x-cdn-name': 'interrupted.bin', 'content-length': String(64 * 256 * 1024) },
    body: Readable.from(body)
  }).then(res => res.body.text(), () => 'cut')
  // The request fails as soon as the manager dies; the kill itself is done only when it is gone.
  await dead
  assert.ok([...await allBlobs(ctx)].some(b => !ctx.kept.has(b)), 'the interrupted upload left blobs behind')

  await restartManager(ctx)
  await eventually('the interrupted upload\'s blobs collected from every node', async () => {
    return [...await allBlobs(ctx)].every(b => ctx.kept.has(b))
  }, 60_000)
  assert.equal((await poolContents(net.manager, net.adminToken)).map(c => c.id), [kept.id], 'only the finished content is visible')
  const events = (await getJson(`${net.manager}/api/events?limit=50`, net.adminToken)).body.events as any[]
  assert.ok(events.some(e => e.kind === 'publish-failed' && /restart/.test(e.detail?.reason ?? '')))
})

test('kill -9 during a delete: after the restart the delete finishes on every node', async (ctx) => {
  const { net } = ctx
  const file = await randomFile(ctx.dir, 'doomed.bin', 700 * 1024)
  const pub = await cdnJson(['publish', file, '--manager', net.manager, '--token-file', net.tokenFile])
  const resolved = (await getJson(`${net.manager}/api/contents/${pub.id}`)).body
  const blobs = [pub.id, ...decodeManifest(Buffer.from(resolved.manifest, 'base64')).chunks]
  const holders: NetworkNode[] = []
  for (const n of net.nodes) if ((await blobFiles(n.data)).has(pub.id)) holders.push(n)
  assert.ok(holders.length >= 3)

  // Every holder paused: the delete commits, its orders cannot land, and the manager dies meanwhile.
  for (const h of holders) process.kill(h.pid, 'SIGSTOP')
  try {
    const answer = fetch(`${net.manager}/api/contents/${pub.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${net.token}` } }).catch(() => undefined)
    await eventually('the delete committed', async () => !(await poolContents(net.manager, net.adminToken)).some(c => c.id === pub.id), 20_000, 50)
    await killManager(ctx)
    await answer
    for (const h of holders) assert.ok((await blobFiles(h.data)).has(pub.id), 'no holder had deleted anything')
    await restartManager(ctx)
  } finally {
    for (const h of holders) process.kill(h.pid, 'SIGCONT')
  }
  await eventually('every holder deleted the content', async () => {
    for (const h of holders) {
      const files = await blobFiles(h.data)
      if (blobs.some(b => files.has(b))) return false
    }
    return true
  }, 60_000)
  await eventually('the restarted manager recorded the resumed delete', async () => {
    const events = (await getJson(`${net.manager}/api/events?limit=100`, net.adminToken)).body.events as any[]
    return events.some(e => e.kind === 'delete-resumed' && e.content === pub.id)
  }, 60_000)
  assert.is((await getJson(`${net.manager}/api/contents/${pub.id}`)).status, 404)
})

test.run()
