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
import { CpuMeter, perMiB, summarizeCpu } from '../cpu.ts'
import { cryptoFloorMsPerMiB } from '../floors.ts'
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
    const originCpu: number[] = []
    const withCurl = await curlAvailable()
    const server = await startChild({ role: 'origin', args: [ORIGIN, '--file', file.path], logFile: join(ctx.workDir, 'logs', 'origin.log') })
    try {
      // One read first, so both systems are measured with the file in the page cache.
      await download(`${server.info.http}/file`, { expectBytes: file.size, signal: ctx.signal })
      for (const run of ctx.repeat(0, 2)) {
        const meter = new CpuMeter({ server: [server.pid] })
        await meter.start()
        const r = await download(`${server.info.http}/file`, { expectBytes: file.size, expectFingerprint: file.fingerprint, signal: ctx.signal })
        originCpu.push(perMiB(await meter.stop(), file.size).server)
        originRates.push(r.mbps)
        originTtfb.push(r.ttfbMs)
        if (withCurl) curlRates.push(await curlMbps(`${server.info.http}/file`, file.size, ctx.signal))
        ctx.log(`origin run ${run}/${ctx.runs}: ${mbps(r.mbps)}${withCurl ? ` (curl: ${mbps(curlRates.at(-1)!)})` : ''}`)
      }
    } finally {
      await server.stop()
    }
    // The Node client measures every system alike; curl's figure shows the server's own limit beside it.
    const originLine = { system: 'origin' as const, nodes: 1, size: file.size, egressCapMBps: null, mbps: summarize(originRates), ttfbMs: summarize(originTtfb), curlMbps: withCurl ? summarize(curlRates) : null, cpuMsPerMiB: { server: summarize(originCpu) } }
    ctx.sink.emit(originLine)
    const floors = { crypto: cryptoFloorMsPerMiB(), fileServer: originLine.cpuMsPerMiB.server.median }
    ctx.log(`floors: crypto ${floors.crypto} ms/MiB, plain file server ${floors.fileServer} ms/MiB`)

    const net = await CdnNetwork.start({ dir: join(ctx.workDir, 'net'), nodes: [{ egress: 'unlimited' }] })
    try {
      const published = await net.publish(file.path, 1, ctx.signal)
      const rates: number[] = []
      const ttfb: number[] = []
      const cpu: Array<Record<string, number>> = []
      for (const run of ctx.repeat(1, 2)) {
        await net.freshProxy(ctx.signal)
        const meter = new CpuMeter({ proxy: [net.proxy!.pid], node: net.nodes.map(n => n.pid) })
        await meter.start()
        const r = await download(`${net.proxyUrl}/c/${published.id}`, { expectBytes: file.size, expectFingerprint: file.fingerprint, signal: ctx.signal })
        cpu.push(perMiB(await meter.stop(), file.size))
        rates.push(r.mbps)
        ttfb.push(r.ttfbMs)
        ctx.log(`ours run ${run}/${ctx.runs}: ${mbps(r.mbps)}, CPU ms/MiB ${JSON.stringify(cpu.at(-1))}`)
      }
      const ours = summarize(rates)
      const cpuMsPerMiB = summarizeCpu(cpu)
      ctx.sink.emit({
        system: 'ours',
        nodes: 1,
        size: file.size,
        egressCapMBps: null,
        mbps: ours,
        ttfbMs: summarize(ttfb),
        vsOrigin: ratio(ours.median, originLine.mbps.median),
        cpuMsPerMiB,
        floorMsPerMiB: floors,
        vsFloor: { proxy: ratio(cpuMsPerMiB.proxy.median, floors.crypto), node: ratio(cpuMsPerMiB.node.median, floors.fileServer) }
      })
    } finally {
      await net.stop()
    }
  }
}

