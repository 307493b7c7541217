/**
 * Deletes that finish on real processes: a holder that missed the delete
 * (paused with SIGSTOP, or killed and started again from its directory)
 * drops the content's blobs and stops serving them within about a
 * heartbeat of coming back. Prints how long convergence took.
 */
import { suite } from 'uvu'
import * as assert from 'uvu/assert'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { decodeManifest } from '../../core/manifest.ts'
import { blobFiles, CDN, cdnJson, eventually, getJson, poolContents, randomFile, startNetwork, tempDir, type Network, type NetworkNode } from './harness.ts'

const HEARTBEAT_MS = 1000

interface Ctx { net: Network, dir: string, restarted: ChildProcess[] }
const test = suite<Ctx>('deletes that finish')

test.before(async (ctx) => {
  ctx.net = await startNetwork({ nodes: 4, extra: ['--heartbeat', `${HEARTBEAT_MS}ms`, '--reconcile', '1s', '--chunk-size', '256KiB', '--replicas', '3'] })
  ctx.dir = await tempDir('convergence')
  ctx.restarted = []
})

test.after(async (ctx) => {
  for (const p of ctx.restarted ?? []) {
    if (p.exitCode == null && p.signalCode == null) {
      const exited = new Promise(resolve => p.once('exit', resolve))
      p.kill('SIGCONT')
      p.kill('SIGTERM')
      await exited
    }
  }
  for (const n of ctx.net?.nodes ?? []) {
    try { process.kill(n.pid, 'SIGCONT') } catch {}
  }
  await ctx.net?.stop()
  await rm(ctx.dir, { recursive: true, force: true })
})

async function publish (ctx: Ctx, name: string): Promise<{ id: string, blobs: string[], holders: NetworkNode[] }> {
  const file = await randomFile(ctx.dir, name, 700 * 1024)
  const pub = await cdnJson(['publish', file, '--manager', ctx.net.manager, '--token-file', ctx.net.tokenFile])
  const resolved = (await getJson(`${ctx.net.manager}/api/contents/${pub.id}`)).body
  const blobs = [pub.id, ...decodeManifest(Buffer.from(resolved.manifest, 'base64')).chunks]
  const holders: NetworkNode[] = []
  for (const n of ctx.net.nodes) if ((await blobFiles(n.data)).has(pub.id)) holders.push(n)
  return { id: pub.id, blobs, holders }
}

/** True once the node at `http` serves nothing of the content and its disk holds none of its blobs. */
async function forgotten (http: string, data: string, id: string, blobs: string[]): Promise<boolean> {
  try {
    const have = await fetch(`${http}/have/${id}`, { signal: AbortSignal.timeout(5000) })
    await have.arrayBuffer()
    if (have.status !== 404) return false
    for (const b of blobs) {
      const res = await fetch(`${http}/chunk/${b}`, { method: 'HEAD', signal: AbortSignal.timeout(5000) })
      if (res.status !== 404) return false
    }
  } catch {
    return false
  }
  const files = await blobFiles(data)
  return !blobs.some(b => files.has(b))
}

async function rmContent (ctx: Ctx, id: string): Promise<void> {
  const r = await cdnJson(['rm', id, '--manager', ctx.net.manager, '--token-file', ctx.net.tokenFile])
  assert.is(r.deleted, true)
  assert.not.ok((await poolContents(ctx.net.manager, ctx.net.adminToken)).some(c => c.id === id))
}

/** Which path reached the node first, from its own log: the delete order it had queued, or its heartbeat's drop list. */
async function howDropped (ctx: Ctx, node: NetworkNode, id: string): Promise<string> {
  const log = await readFile(join(ctx.net.dir, 'logs', `node-${ctx.net.nodes.indexOf(node)}.log`), 'utf8').catch(() => '')
  const lines = log.split('\n').filter(l => l.includes('"delete order done"') || l.includes('"dropped contents the manager no longer keeps"'))
  const last = lines.at(-1) ?? ''
  return last.includes('dropped contents') ? 'the heartbeat\'s drop list' : last !== '' ? 'the queued delete order' : `unknown (${id})`
}

function seconds (ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`
}

test('a holder paused during the delete drops the blobs and stops serving them once it runs again', async (ctx) => {
  const { id, blobs, holders } = await publish(ctx, 'paused.bin')
  assert.ok(holders.length >= 3)
  const paused = holders[0]
  process.kill(paused.pid, 'SIGSTOP')
  try {
    await rmContent(ctx, id)
    await eventually('the other holders forgot it', async () => {
      for (const h of holders.slice(1)) if (!await forgotten(h.http, h.data, id, blobs)) return false
      return true
    }, 30_000)
    assert.ok((await blobFiles(paused.data)).has(id), 'the paused holder still has it')
  } finally {
    process.kill(paused.pid, 'SIGCONT')
  }
  const t0 = performance.now()
  await eventually('the paused holder forgot it after SIGCONT', async () => await forgotten(paused.http, paused.data, id, blobs), 30_000, 50)
  const took = performance.now() - t0
  console.log(`convergence after SIGCONT: ${seconds(took)} (heartbeat ${seconds(HEARTBEAT_MS)}; by ${await howDropped(ctx, paused, id)})`)
})

test('a holder killed during the delete and started again from its directory drops them within a heartbeat', async (ctx) => {
  const { id, blobs, holders } = await publish(ctx, 'killed.bin')
  const victim = holders.find(h => h.pid !== ctx.net.nodes[0].pid) ?? holders[0]
  process.kill(victim.pid, 'SIGKILL')
  await rmContent(ctx, id)
  assert.ok((await blobFiles(victim.data)).has(id), 'the killed holder missed the order')

  const proc = spawn(process.execPath, [CDN, 'node', 'start', '--manager', ctx.net.managerMultiaddr,
    '--data', victim.data, '--json'], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, CDN_LOG_LEVEL: 'silent', CDN_JOIN_TOKEN: ctx.net.joinToken } })
  ctx.restarted.push(proc)
  const info = JSON.parse(await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve)
    proc.once('exit', (code) => { reject(new Error(`node exited with ${code}`)) })
  }))
  const t0 = performance.now()
  assert.is(info.peerId, victim.peerId, 'same identity')
  await eventually('the restarted holder forgot it', async () => await forgotten(info.http, victim.data, id, blobs), 30_000, 50)
  console.log(`convergence after restart: ${seconds(performance.now() - t0)} from its ready line (heartbeat ${seconds(HEARTBEAT_MS)})`)
  const events = (await getJson(`${ctx.net.manager}/api/events?limit=100`, ctx.net.adminToken)).body.events as any[]
  assert.ok(events.some(e => e.kind === 'content-deleted' && e.content === id))
})

test.run()
