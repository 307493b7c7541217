/**
 * Several managers on one PostgreSQL catalog (`cdn up --managers N
 * --postgres`, every role its own process):
 * - publish throughput with 1 and with 2 managers: `--files` files of
 *   `--size` published at once (3 copies per chunk, 4 uncapped nodes), spread
 *   over the managers, total bytes over wall time;
 * - controller takeover after kill -9: three managers, the controller's
 *   manager killed, then the next one's; the time until a survivor says it
 *   runs the controller, polled every 20 ms, at two heartbeat intervals (the
 *   controller lease lasts one).
 *
 *   node bench/several-managers.ts [--size 128MiB] [--files 2]
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { parseSize } from '../core/units.ts'
import { CDN, runCli } from './cdn-network.ts'
import { makeRandomFile } from './files.ts'

const { values: args } = parseArgs({ options: { size: { type: 'string', default: '128MiB' }, files: { type: 'string', default: '2' } } })
const size = parseSize(args.size)
const files = Number(args.files)
const MiB = 1024 * 1024

interface Up { proc: ChildProcess, summary: any }

async function up (dir: string, managers: number, heartbeat: string): Promise<Up> {
  const proc = spawn(process.execPath, [CDN, 'up', '--json', '--no-restart', '--dir', dir, '--nodes', '4', '--managers', String(managers), '--postgres',
    '--heartbeat', heartbeat, '--manager-port', '0', '--proxy-port', '0', '--node-egress', 'unlimited', '--max-copies', '3'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CDN_LOG_LEVEL: 'warn' } })
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve)
    proc.once('exit', code => { reject(new Error(`cdn up exited with ${code} (logs in ${dir}/logs)`)) })
  })
  return { proc, summary: JSON.parse(line) }
}

async function down (u: Up): Promise<void> {
  if (u.proc.exitCode != null) return
  const exited = new Promise(resolve => u.proc.once('exit', resolve))
  u.proc.kill('SIGTERM')
  await exited
}

async function publishThroughput (work: string, managers: number, paths: string[]): Promise<number> {
  const u = await up(join(work, `publish-${managers}`), managers, '5s')
  try {
    const urls: string[] = u.summary.managers.map((m: any) => m.url)
    const t0 = performance.now()
    await Promise.all(paths.map(async (p, i) => await runCli(['publish', p, '--manager', urls[i % urls.length], '--replicas', '3', '--json'], undefined, { CDN_TOKEN: u.summary.token })))
    return (paths.length * size) / MiB / ((performance.now() - t0) / 1000)
  } finally {
    await down(u)
  }
}

async function controllerOf (urls: string[], token: string): Promise<string | undefined> {
  for (const url of urls) {
    try {
      const r = await fetch(`${url}/api/health/replication`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(2000) })
      if ((await r.json() as any).controller?.self === true) return url
    } catch {}
  }
  return undefined
}

async function takeovers (work: string, heartbeat: string): Promise<number[]> {
  const u = await up(join(work, `takeover-${heartbeat}`), 3, heartbeat)
  const out: number[] = []
  try {
    let live: Array<{ url: string, pid: number }> = u.summary.managers
    for (let kill = 0; kill < 2; kill++) {
      let controller: string | undefined
      while ((controller = await controllerOf(live.map(m => m.url), u.summary.adminToken)) == null) await new Promise(resolve => setTimeout(resolve, 50))
      const victim = live.find(m => m.url === controller)!
      process.kill(victim.pid, 'SIGKILL')
      const t0 = performance.now()
      live = live.filter(m => m !== victim)
      while (await controllerOf(live.map(m => m.url), u.summary.adminToken) == null) await new Promise(resolve => setTimeout(resolve, 20))
      out.push(Math.round(performance.now() - t0))
      process.stderr.write(`takeover at heartbeat ${heartbeat}: ${out.at(-1)} ms\n`)
    }
    return out
  } finally {
    await down(u)
  }
}

const work = await mkdtemp(join(tmpdir(), 'cdn-bench-managers-'))
// As root the clusters run as `postgres`, which must pass through this directory (search only).
await chmod(work, 0o711)
try {
  const paths = await Promise.all(Array.from({ length: files }, async (_, i) => {
    const p = join(work, `upload-${i}.bin`)
    await makeRandomFile(p, size)
    return p
  }))
  const publish: Record<string, number> = {}
  for (const managers of [1, 2]) {
    publish[managers] = Math.round(await publishThroughput(work, managers, paths) * 10) / 10
    process.stderr.write(`${managers} manager(s): ${publish[managers]} MiB/s\n`)
  }
  const takeoverMs = { '1s': await takeovers(work, '1s'), '5s': await takeovers(work, '5s') }
  process.stdout.write(`${JSON.stringify({ size, files, replicas: 3, nodes: 4, publishMiBps: publish, takeoverMs, loadavg: (await import('node:os')).loadavg() })}\n`)
} finally {
  await rm(work, { recursive: true, force: true })
}
