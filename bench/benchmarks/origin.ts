/**
 * Our cost over the physical limit of one machine: the same 256 MiB from a
 * plain `node:http` file server and from one uncapped node of ours through
 * the proxy. The ratio ours ÷ origin is the share of one machine's HTTP
 * throughput that survives chunking, hashing, decryption and reordering.
 */
import { join } from 'node:path'
import { CdnNetwork } from '../cdn-network.ts'
import { startChild } from '../child.ts'
import { mbps, MiB, type Benchmark } from '../context.ts'
import { curlAvailable, curlMbps } from '../curl.ts'
import { download } from '../download.ts'
import { ratio, summarize } from '../stats.ts'

const ORIGIN = join(import.meta.dirname, '..', 'origin-server.ts')

export const origin: Benchmark = {
  name: 'origin',
  about: 'the same 256 MiB from a plain node:http file server and from one uncapped node through the proxy; MB/s and ours ÷ origin',
  async run (ctx) {
    const file = await ctx.file('content', ctx.size(256 * MiB))
    const originRates: number[] = []
    const originTtfb: number[] = []
    const curlRates: number[] = []
    const withCurl = await curlAvailable()
    const server = await startChild({ role: 'origin', args: [ORIGIN, '--file', file.path], logFile: join(ctx.workDir, 'logs', 'origin.log') })
    try {
      // One read first, so both systems are measured with the file in the page cache.
      await download(`${server.info.http}/file`, { expectBytes: file.size, signal: ctx.signal })
      for (const run of ctx.repeat(0, 2)) {
        const r = await download(`${server.info.http}/file`, { expectBytes: file.size, expectFingerprint: file.fingerprint, signal: ctx.signal })
        originRates.push(r.mbps)
        originTtfb.push(r.ttfbMs)
        if (withCurl) curlRates.push(await curlMbps(`${server.info.http}/file`, file.size, ctx.signal))
        ctx.log(`origin run ${run}/${ctx.runs}: ${mbps(r.mbps)}${withCurl ? ` (curl: ${mbps(curlRates.at(-1)!)})` : ''}`)
      }
    } finally {
      await server.stop()
    }
    // The Node client measures every system alike; curl's figure shows the server's own limit beside it.
    const originLine = { system: 'origin' as const, nodes: 1, size: file.size, egressCapMBps: null, mbps: summarize(originRates), ttfbMs: summarize(originTtfb), curlMbps: withCurl ? summarize(curlRates) : null }
    ctx.sink.emit(originLine)

    const net = await CdnNetwork.start({ dir: join(ctx.workDir, 'net'), nodes: [{ egress: 'unlimited' }] })
    try {
      const published = await net.publish(file.path, 1, ctx.signal)
      const rates: number[] = []
      const ttfb: number[] = []
      for (const run of ctx.repeat(1, 2)) {
        await net.freshProxy(ctx.signal)
        const r = await download(`${net.proxyUrl}/c/${published.id}`, { expectBytes: file.size, expectFingerprint: file.fingerprint, signal: ctx.signal })
        rates.push(r.mbps)
        ttfb.push(r.ttfbMs)
        ctx.log(`ours run ${run}/${ctx.runs}: ${mbps(r.mbps)}`)
      }
      const ours = summarize(rates)
      ctx.sink.emit({ system: 'ours', nodes: 1, size: file.size, egressCapMBps: null, mbps: ours, ttfbMs: summarize(ttfb), vsOrigin: ratio(ours.median, originLine.mbps.median) })
    } finally {
      await net.stop()
    }
  }
}
