/**
 * Does throughput add up across sources? N nodes, each capped at 25 MB/s,
 * all holding one 256 MiB content; a fresh proxy fetches it. Perfect
 * aggregation gives N × 25 MB/s: efficiency is the share of that we reach.
 */
import { join } from 'node:path'
import { CdnNetwork } from '../cdn-network.ts'
import { mbps, MiB, type Benchmark } from '../context.ts'
import { download } from '../download.ts'
import { CpuMeter, perMiB, summarizeCpu } from '../cpu.ts'
import { cryptoFloorMsPerMiB, fileServerFloor } from '../floors.ts'
import { ratio, summarize } from '../stats.ts'

const CAP_MBPS = 25
const NODE_COUNTS = [1, 2, 4, 8]

export const aggregate: Benchmark = {
  name: 'aggregate',
  about: `N = ${NODE_COUNTS.join(', ')} nodes at ${CAP_MBPS} MB/s each, one 256 MiB content held by all; MB/s through the proxy and efficiency = MB/s ÷ (N × ${CAP_MBPS})`,
  async run (ctx) {
    const file = await ctx.file('content', ctx.size(256 * MiB))
    const floors = { crypto: cryptoFloorMsPerMiB(), fileServer: (await fileServerFloor(ctx, file)).msPerMiB }
    ctx.log(`floors: crypto ${floors.crypto} ms/MiB, plain file server ${floors.fileServer} ms/MiB`)
    for (const [part, n] of NODE_COUNTS.entries()) {
      const net = await CdnNetwork.start({ dir: join(ctx.workDir, `net-${n}`), nodes: Array.from({ length: n }, () => ({ egress: `${CAP_MBPS}MB/s` })) })
      try {
        const published = await net.publish(file.path, n, ctx.signal)
        ctx.log(`N=${n}: published with R=${n} in ${published.seconds.toFixed(1)} s`)
        const rates: number[] = []
        const ttfb: number[] = []
        const cpu: Array<Record<string, number>> = []
        for (const run of ctx.repeat(part, NODE_COUNTS.length)) {
          await net.freshProxy(ctx.signal)
          const meter = new CpuMeter({ proxy: [net.proxy!.pid], node: net.nodes.map(c => c.pid) })
          await meter.start()
          const r = await download(`${net.proxyUrl}/c/${published.id}`, { expectBytes: file.size, expectFingerprint: file.fingerprint, signal: ctx.signal })
          cpu.push(perMiB(await meter.stop(), file.size))
          rates.push(r.mbps)
          ttfb.push(r.ttfbMs)
          ctx.log(`N=${n} run ${run}/${ctx.runs}: ${mbps(r.mbps)}, efficiency ${(r.mbps / (n * CAP_MBPS)).toFixed(2)}, CPU ms/MiB ${JSON.stringify(cpu.at(-1))}`)
        }
        const cpuMs = summarizeCpu(cpu)
        ctx.sink.emit({
          system: 'ours',
          nodes: n,
          size: file.size,
          egressCapMBps: CAP_MBPS,
          replicas: n,
          mbps: summarize(rates),
          efficiency: summarize(rates.map(r => r / (n * CAP_MBPS))),
          ttfbMs: summarize(ttfb),
          cpuMsPerMiB: cpuMs,
          floorMsPerMiB: floors,
          vsFloor: { proxy: ratio(cpuMs.proxy.median, floors.crypto), node: ratio(cpuMs.node.median, floors.fileServer) }
        })
      } finally {
        await net.stop()
      }
    }
  }
}
