/**
 * The peer to beat: the same 256 MiB file held by 1 and by 3 Helia peers and
 * fetched by another, against ours with 1 and 3 uncapped nodes through the
 * proxy. Both sides start cold for the content (the fetcher is connected to
 * the providers, the proxy to the DHT and the manager) and are timed from
 * the request to the last byte.
 */
import { join } from 'node:path'
import { CdnNetwork } from '../cdn-network.ts'
import { mbps, MiB, type Benchmark } from '../context.ts'
import { download } from '../download.ts'
import { heliaFetch, startProviders } from '../helia-swarm.ts'
import { ratio, round, summarize, type Summary } from '../stats.ts'

const PEER_COUNTS = [1, 3]

/** The longest a Helia fetch may take; one that receives nothing for 30 s is cut off sooner as stalled. */
const FETCH_TIMEOUT_MS = 600_000

export const helia: Benchmark = {
  name: 'helia',
  about: 'one 256 MiB file held by 1 and 3 Helia peers (bitswap over TCP) and fetched by another, against ours with 1 and 3 nodes; MB/s, time to first byte, ours ÷ Helia',
  async run (ctx) {
    const file = await ctx.file('content', ctx.size(256 * MiB))
    const logs = join(ctx.workDir, 'logs')
    const heliaBy = new Map<number, { mbps: Summary, ttfbMs: Summary }>()
    // Four cases share the budget: Helia with 1 and 3 providers, then ours with 1 and 3 nodes.
    for (const [part, count] of PEER_COUNTS.entries()) {
      const providers = await startProviders(count, file, logs)
      try {
        ctx.log(`helia: ${count} provider(s) imported the file in ${providers.map(p => Number(p.info.importSeconds).toFixed(1)).join(', ')} s`)
        const rates: number[] = []
        const ttfb: number[] = []
        const firstMiB: number[] = []
        const connect: number[] = []
        const rss: number[] = []
        const stalls: Array<{ bytes: number, seconds: number }> = []
        for (const run of ctx.repeat(part, 2 * PEER_COUNTS.length)) {
          const r = await heliaFetch(providers, file, join(logs, `helia-fetcher-${count}-${run}.log`), FETCH_TIMEOUT_MS)
          connect.push(r.connectMs)
          if (r.stalled) {
            stalls.push({ bytes: r.bytes, seconds: round(r.seconds) })
            ctx.log(`helia ${count} provider(s) run ${run}/${ctx.runs}: STALLED, ${r.bytes} of ${file.size} bytes after ${r.seconds.toFixed(0)} s`)
            continue
          }
          rates.push(r.mbps)
          ttfb.push(r.ttfbMs)
          firstMiB.push(r.firstMiBMs)
          rss.push(r.peakRss / MiB)
          ctx.log(`helia ${count} provider(s) run ${run}/${ctx.runs}: ${mbps(r.mbps)}, first byte after ${r.ttfbMs.toFixed(0)} ms`)
        }
        // Every run stalling is a result too: the line then has no figures, only the stalls.
        const line = rates.length === 0 ? undefined : { mbps: summarize(rates), ttfbMs: summarize(ttfb) }
        if (line != null) heliaBy.set(count, line)
        ctx.sink.emit({
          system: 'helia',
          nodes: count,
          size: file.size,
          egressCapMBps: null,
          ...line,
          firstMiBMs: rates.length === 0 ? null : summarize(firstMiB),
          connectMs: summarize(connect),
          fetcherPeakRssMiB: rates.length === 0 ? null : summarize(rss),
          // Runs that never finished are left out of the figures above and listed here.
          stalledRuns: stalls
        })
      } finally {
        await Promise.all(providers.map(async p => { await p.stop() }))
      }
    }

    for (const [i, count] of PEER_COUNTS.entries()) {
      const net = await CdnNetwork.start({ dir: join(ctx.workDir, `net-${count}`), nodes: Array.from({ length: count }, () => ({ egress: 'unlimited' })) })
      try {
        const published = await net.publish(file.path, count, ctx.signal)
        const rates: number[] = []
        const ttfb: number[] = []
        const firstMiB: number[] = []
        for (const run of ctx.repeat(PEER_COUNTS.length + i, 2 * PEER_COUNTS.length)) {
          await net.freshProxy(ctx.signal)
          const r = await download(`${net.proxyUrl}/c/${published.id}`, { expectBytes: file.size, expectFingerprint: file.fingerprint, signal: ctx.signal })
          rates.push(r.mbps)
          ttfb.push(r.ttfbMs)
          firstMiB.push(r.firstMiBMs)
          ctx.log(`ours ${count} node(s) run ${run}/${ctx.runs}: ${mbps(r.mbps)}, first byte after ${r.ttfbMs.toFixed(0)} ms`)
        }
        const ours = { mbps: summarize(rates), ttfbMs: summarize(ttfb) }
        const peer = heliaBy.get(count)
        ctx.sink.emit({
          system: 'ours',
          nodes: count,
          size: file.size,
          egressCapMBps: null,
          replicas: count,
          ...ours,
          firstMiBMs: summarize(firstMiB),
          // Above 1 we are faster; for time to first byte, below 1 we are quicker.
          vsHelia: { mbps: ratio(ours.mbps.median, peer?.mbps.median), ttfb: ratio(ours.ttfbMs.median, peer?.ttfbMs.median) }
        })
      } finally {
        await net.stop()
      }
    }
  }
}
