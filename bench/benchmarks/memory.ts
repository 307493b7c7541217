/**
 * The proxy's memory under load: 4 clients at once, each streaming a
 * different 1 GiB content. It streams in order with a bounded reorder buffer
 * and backpressure, so its peak should stay far below what it streams.
 */
import { join } from 'node:path'
import { CdnNetwork } from '../cdn-network.ts'
import { GiB, mbps, MiB, type Benchmark } from '../context.ts'
import { download } from '../download.ts'
import { readStatusField, PeakRss } from '../rss.ts'
import { round, summarize } from '../stats.ts'

const NODES = 4
const CLIENTS = 4
// One copy each is enough: the proxy still spreads each content over every node, and publishing stays affordable.
const REPLICAS = 1

export const memory: Benchmark = {
  name: 'memory',
  about: `the proxy's peak RSS while ${CLIENTS} clients stream different 1 GiB contents (${NODES} nodes, R=${REPLICAS})`,
  async run (ctx) {
    const file = await ctx.file('content', ctx.size(GiB))
    const net = await CdnNetwork.start({ dir: join(ctx.workDir, 'net'), nodes: Array.from({ length: NODES }, () => ({ egress: 'unlimited' })) })
    try {
      // One file published CLIENTS times: each publish has its own key, so the contents share no blob.
      const ids: string[] = []
      for (let i = 0; i < CLIENTS; i++) {
        const p = await net.publish(file.path, REPLICAS, ctx.signal)
        ids.push(p.id)
        ctx.log(`published content ${i + 1}/${CLIENTS} in ${p.seconds.toFixed(1)} s`)
      }
      const peaks: number[] = []
      const idles: number[] = []
      const totals: number[] = []
      for (const run of ctx.repeat(0, 1)) {
        await net.freshProxy(ctx.signal)
        const pid = net.proxy!.pid
        idles.push(((await readStatusField(pid, 'VmRSS')) ?? 0) / MiB)
        const peak = new PeakRss(pid)
        await peak.start()
        const t0 = performance.now()
        try {
          await Promise.all(ids.map(async id => download(`${net.proxyUrl}/c/${id}`, { expectBytes: file.size, expectFingerprint: file.fingerprint, signal: ctx.signal })))
        } finally {
          peaks.push((await peak.stop()) / MiB)
        }
        totals.push(CLIENTS * file.size / 1e6 / ((performance.now() - t0) / 1000))
        ctx.log(`run ${run}/${ctx.runs}: proxy peak RSS ${peaks.at(-1)!.toFixed(0)} MiB (idle ${idles.at(-1)!.toFixed(0)} MiB), ${mbps(totals.at(-1)!)} in all`)
      }
      ctx.sink.emit({
        system: 'ours',
        nodes: NODES,
        replicas: REPLICAS,
        clients: CLIENTS,
        size: file.size,
        egressCapMBps: null,
        proxyPeakRssMiB: summarize(peaks),
        proxyIdleRssMiB: summarize(idles),
        mbps: summarize(totals),
        streamedMiB: round(CLIENTS * file.size / MiB)
      })
    } finally {
      await net.stop()
    }
  }
}
