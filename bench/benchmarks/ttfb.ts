/**
 * How soon a viewer sees bytes. Cold: a content the proxy has never seen, so
 * the first byte waits for the manifest and key, the DHT's providers, their
 * have-bitmaps and the first chunk. Warm: the same content asked again. Each
 * is shown beside the time one chunk takes straight from a node, which is the
 * floor ("a video starts within one chunk's fetch").
 */
import { join } from 'node:path'
import { CdnNetwork } from '../cdn-network.ts'
import { MiB, type Benchmark } from '../context.ts'
import { download, type DownloadResult } from '../download.ts'
import { summarize, type Summary } from '../stats.ts'

const NODES = 4
const REPLICAS = 3

class Timings {
  private readonly headers: number[] = []
  private readonly ttfb: number[] = []
  private readonly firstMiB: number[] = []

  add (r: DownloadResult): void {
    this.headers.push(r.headersMs)
    this.ttfb.push(r.ttfbMs)
    this.firstMiB.push(r.firstMiBMs)
  }

  summary (): { headersMs: Summary, ttfbMs: Summary, firstMiBMs: Summary } {
    return { headersMs: summarize(this.headers), ttfbMs: summarize(this.ttfb), firstMiBMs: summarize(this.firstMiB) }
  }
}

/** ms to GET the content's first chunk straight from a node that holds it. */
async function oneChunkMs (net: CdnNetwork, id: string, signal: AbortSignal): Promise<number> {
  const res = await fetch(`${net.managerUrl}/api/contents/${id}`, { signal })
  const body = await res.json() as { manifest: string, holders: Array<{ http: string }> }
  const manifest = JSON.parse(Buffer.from(body.manifest, 'base64').toString('utf8')) as { chunks: string[] }
  const holder = body.holders[0]?.http ?? String(net.nodes[0].info.http)
  const t0 = performance.now()
  const chunk = await fetch(`${holder}/chunk/${manifest.chunks[0]}`, { signal })
  await chunk.arrayBuffer()
  return performance.now() - t0
}

export const ttfb: Benchmark = {
  name: 'ttfb',
  about: `time to first byte and to the first MiB through the proxy, for a content never seen before and for a warm one (${NODES} nodes, R=${REPLICAS})`,
  async run (ctx) {
    const file = await ctx.file('content', ctx.size(16 * MiB))
    const net = await CdnNetwork.start({ dir: join(ctx.workDir, 'net'), nodes: Array.from({ length: NODES }, () => ({ egress: 'unlimited' })) })
    try {
      const cold = new Timings()
      const warm = new Timings()
      const chunk: number[] = []
      for (const run of ctx.repeat(0, 1)) {
        // A distinct content per run (each publish has its own key, so its own id): each cold run is truly cold.
        const { id } = await net.publish(file.path, REPLICAS, ctx.signal)
        await net.freshProxy(ctx.signal)
        const url = `${net.proxyUrl}/c/${id}`
        const c = await download(url, { expectBytes: file.size, expectFingerprint: file.fingerprint, signal: ctx.signal })
        const w = await download(url, { expectBytes: file.size, expectFingerprint: file.fingerprint, signal: ctx.signal })
        cold.add(c)
        warm.add(w)
        chunk.push(await oneChunkMs(net, id, ctx.signal))
        ctx.log(`run ${run}/${ctx.runs}: cold first byte ${c.ttfbMs.toFixed(0)} ms (first MiB ${c.firstMiBMs.toFixed(0)} ms), warm ${w.ttfbMs.toFixed(0)} ms (${w.firstMiBMs.toFixed(0)} ms), one chunk from a node ${chunk.at(-1)!.toFixed(0)} ms`)
      }
      const common = { system: 'ours' as const, nodes: NODES, replicas: REPLICAS, size: file.size, egressCapMBps: null, oneChunkMs: summarize(chunk) }
      ctx.sink.emit({ ...common, case: 'cold', ...cold.summary() })
      ctx.sink.emit({ ...common, case: 'warm', ...warm.summary() })
    } finally {
      await net.stop()
    }
  }
}
