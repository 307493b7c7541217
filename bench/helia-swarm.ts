/**
 * Helia on our benchmarks' terms: provider peers and a fetcher peer, each its
 * own process (bench/helia-peer.ts), all on loopback.
 */
import { join } from 'node:path'
import { UpstreamError } from '../core/errors.ts'
import { startChild, type Child } from './child.ts'
import type { TestFile } from './context.ts'

const PEER = join(import.meta.dirname, 'helia-peer.ts')

export type HeliaFetch = {
  stalled: false
  /** ms to dial every provider */
  connectMs: number
  ttfbMs: number
  firstMiBMs: number
  seconds: number
  mbps: number
  /** the fetcher's peak resident bytes */
  peakRss: number
} | {
  /** the transfer had not finished when the fetcher's time ran out */
  stalled: true
  connectMs: number
  bytes: number
  seconds: number
}

/** Starts `count` providers that each import `file`; they all end up with the same root CID. */
export async function startProviders (count: number, file: TestFile, logDir: string): Promise<Child[]> {
  const providers: Child[] = []
  try {
    // One at a time: importing is CPU-bound and the machine has two cores.
    for (let i = 0; i < count; i++) {
      providers.push(await startChild({
        role: `helia-provider-${i}`,
        args: [PEER, 'provide', '--file', file.path],
        logFile: join(logDir, `helia-provider-${i}.log`),
        readyTimeout: 600_000
      }))
    }
    const cids = new Set(providers.map(p => String(p.info.cid)))
    if (cids.size !== 1) throw new UpstreamError(`helia providers imported the same file as different CIDs: ${[...cids].join(' ')}`)
  } catch (err) {
    await Promise.all(providers.map(async p => { await p.stop() }))
    throw err
  }
  return providers
}

/** One fetch of the providers' file by a fresh fetcher process, given `timeoutMs` to finish. */
export async function heliaFetch (providers: Child[], file: TestFile, logFile: string, timeoutMs: number): Promise<HeliaFetch> {
  const cid = String(providers[0].info.cid)
  const args = [PEER, 'fetch', '--cid', cid, '--size', String(file.size), '--fingerprint', file.fingerprint, '--timeout', String(timeoutMs)]
  for (const p of providers) args.push('--provider', String(p.info.multiaddrs[0]))
  const fetcher = await startChild({ role: 'helia-fetcher', args, logFile, readyTimeout: timeoutMs + 60_000 })
  try {
    const r = fetcher.info
    if (r.stalled === true) return { stalled: true, connectMs: r.connectMs, bytes: r.bytes, seconds: r.seconds }
    return { stalled: false, connectMs: r.connectMs, ttfbMs: r.ttfbMs, firstMiBMs: r.firstMiBMs, seconds: r.seconds, mbps: r.mbps, peakRss: r.peakRss }
  } finally {
    await fetcher.stop()
  }
}
