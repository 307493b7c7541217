/**
 * Publishing: `cdn publish` of 1 GiB with R=3 to 4 nodes, then of 4 GiB, with
 * the manager's peak resident memory during each. The manager chunks, encrypts
 * and places as bytes arrive, so its memory must not grow with the file.
 */
import { join } from 'node:path'
import { formatBytes } from '../../core/units.ts'
import { CdnNetwork } from '../cdn-network.ts'
import { GiB, mbps, MiB, type Benchmark } from '../context.ts'
import { requireFreeDisk } from '../files.ts'
import { readStatusField, PeakRss } from '../rss.ts'
import { CpuMeter, perMiB, summarizeCpu } from '../cpu.ts'
import { round, summarize } from '../stats.ts'

const NODES = 4
const REPLICAS = 3
const SIZES = [GiB, 4 * GiB]

export const publish: Benchmark = {
  name: 'publish',
  about: `cdn publish of 1 GiB and of 4 GiB with R=${REPLICAS} to ${NODES} nodes: MB/s and the manager's peak RSS`,
  async run (ctx) {
    for (const [part, base] of SIZES.entries()) {
      const size = ctx.size(base)
      // The file, the manager's staging and R copies on the nodes, with room to spare.
      await requireFreeDisk(ctx.workDir, size * (REPLICAS + 3), `publishing ${formatBytes(size)}`)
      const file = await ctx.file(`content-${base / GiB}GiB`, size)
      // A new pool per size, so both sizes start from the same idle manager.
      const net = await CdnNetwork.start({ dir: join(ctx.workDir, `net-${part}`), nodes: Array.from({ length: NODES }, () => ({ egress: 'unlimited' })) })
      try {
        const rates: number[] = []
        const peaks: number[] = []
        const cpu: Array<Record<string, number>> = []
        const idle = (await readStatusField(net.manager.pid, 'VmRSS')) ?? 0
        for (const run of ctx.repeat(part, SIZES.length)) {
          const peak = new PeakRss(net.manager.pid)
          await peak.start()
          const meter = new CpuMeter({ manager: [net.manager.pid], nodes: net.nodes.map(c => c.pid) })
          await meter.start()
          const published = await net.publish(file.path, REPLICAS, ctx.signal)
          // `client` is only the benchmark process; the publishing CLI is measured apart, until it exits.
          const { client: _, ...measured } = await meter.stop()
          const roles = perMiB({ ...measured, cli: published.cliCpuMs }, size)
          cpu.push(roles)
          const peakBytes = await peak.stop()
          rates.push(size / 1e6 / published.seconds)
          peaks.push(peakBytes / MiB)
          ctx.log(`${formatBytes(size)} run ${run}/${ctx.runs}: ${published.seconds.toFixed(1)} s (${mbps(rates.at(-1)!)}), manager peak RSS ${(peakBytes / MiB).toFixed(0)} MiB, CPU ms/MiB ${JSON.stringify(roles)}`)
          // Each publish has its own key and so its own blobs; removing it keeps the disk from filling.
          await net.remove(published.id, ctx.signal)
        }
        ctx.sink.emit({
          system: 'ours',
          nodes: NODES,
          replicas: REPLICAS,
          size,
          egressCapMBps: null,
          mbps: summarize(rates),
          managerPeakRssMiB: summarize(peaks),
          managerIdleRssMiB: round(idle / MiB),
          cpuMsPerMiB: summarizeCpu(cpu)
        })
      } finally {
        await net.stop()
      }
    }
  }
}
