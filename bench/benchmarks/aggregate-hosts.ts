/**
 * `aggregate` across real network hosts: each node on a host of its own
 * (a Linux network namespace, see testbed/netns.ts) whose link the kernel
 * shapes to 25 MB/s each way, instead of the node's own limiter; the
 * manager, the proxy and the client on hosts of their own too. N = 4 and 8
 * node hosts, all holding one 256 MiB content; a fresh proxy fetches it.
 * Efficiency = MB/s ÷ (N × 25), as in `aggregate`. Needs root.
 */
import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { HashMismatchError } from '../../core/errors.ts'
import { Agent } from '../../testbed/agent-client.ts'
import { Testbed, type HostSpec } from '../../testbed/netns.ts'
import { CDN, joinCommandOf, joinNode, NODE, startManager, startProxy, waitFor, type Daemon } from '../../testbed/pool.ts'
import { mbps, MiB, type BenchContext, type Benchmark, type TestFile } from '../context.ts'
import { makeRandomFile, sliceHash } from '../files.ts'
import { summarize } from '../stats.ts'

const CAP_MBPS = 25
const NODE_COUNTS = [4, 8]
const PROBE_BYTES = 64 * 1024

export const aggregateHosts: Benchmark = {
  name: 'aggregate-hosts',
  about: `N = ${NODE_COUNTS.join(', ')} node hosts (network namespaces) whose links the kernel shapes to ${CAP_MBPS} MB/s, one 256 MiB content held by all; MB/s through a proxy on its own host and efficiency = MB/s ÷ (N × ${CAP_MBPS}); needs root`,
  async run (ctx) {
    const file = await ctx.file('content', ctx.size(256 * MiB))
    const probe = join(ctx.workDir, 'probe.bin')
    await makeRandomFile(probe, PROBE_BYTES)
    const head = await sliceHash(file.path, 0, Math.min(MiB, file.size))
    const tail = await sliceHash(file.path, file.size - Math.min(MiB, file.size), file.size)
    for (const [part, n] of NODE_COUNTS.entries()) {
      const hosts: HostSpec[] = [
        { name: 'manager', octet: 2 },
        { name: 'proxy', octet: 3 },
        { name: 'client', octet: 4 },
        ...Array.from({ length: n }, (_, i) => ({ name: `node${i + 1}`, octet: 11 + i, rate: CAP_MBPS * 1e6 }))
      ]
      const bed = await Testbed.create(hosts)
      const onAbort = (): void => { void bed.destroy() }
      ctx.signal.addEventListener('abort', onAbort)
      try {
        await measure(ctx, bed, n, part, file, probe, { head, tail })
      } finally {
        ctx.signal.removeEventListener('abort', onAbort)
        await bed.destroy()
      }
    }
  }
}

async function measure (ctx: BenchContext, bed: Testbed, n: number, part: number, file: TestFile, probe: string, hashes: { head: string, tail: string }): Promise<void> {
  const dir = join(ctx.workDir, `hosts-${n}`)
  const logs = join(dir, 'logs')
  await mkdir(logs, { recursive: true })
  const token = randomBytes(18).toString('base64url')
  const manager = await startManager(bed, 'manager', { dir: join(dir, 'manager'), logs, publisherToken: token, args: ['--max-upload', '64GiB'] })
  const api = String(manager.info.http)
  const join_ = await joinCommandOf(join(dir, 'manager'))
  await Promise.all(Array.from({ length: n }, async (_, i) => await joinNode(bed, `node${i + 1}`, join_.command, { dir: join(dir, `node${i + 1}`), logs, args: ['--capacity', '50GB'] })))
  const client = new Agent(bed, 'client', join(logs, 'client.log'))
  try {
    await waitFor(`${n} nodes alive`, async () => ((await client.json(`${api}/api/nodes`, token)).nodes as any[]).filter(x => x.state === 'alive').length >= n ? true : undefined, 60_000)
    const publish = async (path: string, replicas: number): Promise<string> => {
      const r = await bed.run('client', [NODE, CDN, 'publish', path, '--manager', api, '--replicas', String(replicas), '--json'], { env: { CDN_TOKEN: token, CDN_LOG_LEVEL: 'error' }, timeoutMs: 30 * 60_000 })
      return String(JSON.parse(r.stdout.trim().split('\n').at(-1)!).id)
    }
    const t0 = performance.now()
    const id = await publish(file.path, n)
    ctx.log(`N=${n} hosts: published with R=${n} in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    const probeId = await publish(probe, 1)
    const url = (c: string): string => `http://${bed.address('proxy')}:8080/c/${c}`
    const rates: number[] = []
    const ttfb: number[] = []
    let proxy: Daemon | undefined
    for (const run of ctx.repeat(part, NODE_COUNTS.length)) {
      // A fresh proxy, already in the DHT and linked to the manager through a tiny probe content.
      if (proxy != null) await bed.killHost('proxy')
      proxy = await startProxy(bed, 'proxy', api, { dir: join(dir, `proxy-${run}`), logs, args: ['--cache-size', '0'] })
      await client.get(url(probeId))
      const r = await client.get(url(id), undefined, { hash: false, timeoutMs: 10 * 60_000 })
      if (r.status !== 200 || r.bytes !== file.size) throw new HashMismatchError(`N=${n}: status ${r.status}, ${r.bytes} of ${file.size} bytes`)
      const first = await client.get(url(id), `bytes=0-${Math.min(MiB, file.size) - 1}`)
      const last = await client.get(url(id), `bytes=-${Math.min(MiB, file.size)}`)
      if (first.sha256 !== hashes.head || last.sha256 !== hashes.tail) throw new HashMismatchError(`N=${n}: the bytes served differ from the file`)
      const rate = file.size / r.seconds / 1e6
      rates.push(rate)
      ttfb.push(r.ttfbMs)
      ctx.log(`N=${n} hosts run ${run}/${ctx.runs}: ${mbps(rate)}, efficiency ${(rate / (n * CAP_MBPS)).toFixed(2)}`)
    }
    ctx.sink.emit({
      system: 'ours',
      hosts: true,
      nodes: n,
      size: file.size,
      linkMBps: CAP_MBPS,
      replicas: n,
      mbps: summarize(rates),
      efficiency: summarize(rates.map(r => r / (n * CAP_MBPS))),
      ttfbMs: summarize(ttfb)
    })
  } finally {
    client.close()
  }
}

