/**
 * How much a name costs over an id, through the proxy: time to first byte of
 * `/n/<name>` against `/c/<id>` for the same content (a generation published
 * with `cdn publish --name`, so its chunking and manifest are the same both
 * ways), on a manager and 3 nodes (bench/cdn-network.ts, every role its own
 * process).
 * - cold: a fresh proxy (already in the DHT, nothing resolved) asked for the
 *   content, by id or by name, each on a proxy of its own;
 * - warm: the same proxy asked again both ways, alternating.
 * The target: a name within 1.2× of an id.
 *
 *   node bench/name-resolution.ts [--runs 5] [--size 4MiB]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { parseSize } from '../core/units.ts'
import { CdnNetwork, runCli } from './cdn-network.ts'
import { download } from './download.ts'
import { makeRandomFile } from './files.ts'
import { median } from './stats.ts'

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '5' }, size: { type: 'string', default: '4MiB' } } })
const runs = Number(args.runs)
const size = parseSize(args.size)

const work = await mkdtemp(join(tmpdir(), 'cdn-bench-names-'))
const net = await CdnNetwork.start({ dir: join(work, 'net'), nodes: Array.from({ length: 3 }, () => ({ egress: 'unlimited' })) })

async function publish (label: string, name?: string): Promise<string> {
  const file = join(work, `${label}.bin`)
  await makeRandomFile(file, size)
  const out = await runCli(['publish', file, '--manager', net.managerUrl, '--replicas', '2', '--json', ...(name != null ? ['--name', name] : [])], undefined, { CDN_TOKEN: net.token })
  return String(JSON.parse(out.trim().split('\n').at(-1) ?? '{}').id)
}

async function ttfb (path: string): Promise<number> {
  return (await download(`${net.proxyUrl}${path}`, { expectBytes: size, timeout: 60_000 })).ttfbMs
}

try {
  const cold = { id: [] as number[], name: [] as number[] }
  const warm = { id: [] as number[], name: [] as number[] }
  for (let r = 0; r < runs; r++) {
    const name = `bench/films/run-${r}.bin`
    const id = await publish(`run-${r}`, name)
    // Alternate which goes first, so neither always meets a proxy one request older.
    const order: Array<'id' | 'name'> = r % 2 === 0 ? ['id', 'name'] : ['name', 'id']
    for (const kind of order) {
      await net.freshProxy()
      cold[kind].push(await ttfb(kind === 'id' ? `/c/${id}` : `/n/${name}`))
    }
    for (let i = 0; i < 10; i++) {
      warm.id.push(await ttfb(`/c/${id}`))
      warm.name.push(await ttfb(`/n/${name}`))
    }
    process.stderr.write(`run ${r + 1}: cold id ${cold.id.at(-1)!.toFixed(1)} ms, name ${cold.name.at(-1)!.toFixed(1)} ms\n`)
  }
  const summary = (x: { id: number[], name: number[] }): Record<string, number> => {
    const id = median(x.id)
    const name = median(x.name)
    return { idMs: Math.round(id * 10) / 10, nameMs: Math.round(name * 10) / 10, ratio: Math.round(name / id * 100) / 100 }
  }
  process.stdout.write(`${JSON.stringify({ size, runs, cold: summary(cold), warm: summary(warm), target: 1.2, loadavg: loadavg() })}\n`)
} finally {
  await net.stop()
  await rm(work, { recursive: true, force: true })
}
