/**
 * The IPFS peer we compare against: Helia with UnixFS and bitswap, each peer
 * its own process on loopback. libp2p is built by hand (TCP, noise, yamux,
 * identify: Helia's own default stack minus everything that reaches out to
 * the public network: bootstrap peers, delegated routing, gateways, mDNS,
 * relays), so no byte leaves 127.0.0.1.
 *
 *   node bench/helia-peer.ts provide --file F [--profile unixfs-v1-2025|unixfs-v0-2015]
 *     imports F (UnixFS, 1 MiB raw leaves, CIDv1: the "unixfs-v1-2025"
 *     profile, the same chunk size as ours) into memory and serves it over
 *     bitswap; prints `{ ready, role, pid, peerId, multiaddrs, cid, size, importSeconds }`
 *     and runs until SIGTERM.
 *
 *   node bench/helia-peer.ts fetch --cid C --size N [--fingerprint F] [--timeout ms] [--idle ms] --provider MA…
 *     connects to the providers (the fetcher is told who has the content: Helia's
 *     best case, no routing lookup), then `cat`s the file, counting the bytes;
 *     prints one JSON line with connectMs, ttfbMs, firstMiBMs, seconds, mbps and
 *     peakRss, and exits. A fetch that receives nothing for --idle ms
 *     (default 30 s), or is unfinished after --timeout ms, is reported as
 *     `stalled` with the bytes that had arrived.
 */
import { createReadStream } from 'node:fs'
import { stat } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createHeliaLight } from 'helia'
import { CID } from 'multiformats/cid'
import { BadInputError, describeError } from '../core/errors.ts'
import { createLogger } from '../core/log.ts'
import { BodyMeter } from './download.ts'
import { readStatusField } from './rss.ts'

const logger = createLogger('bench-helia')

async function startHelia () {
  const helia = withBitswap(withLibp2pLight(createHeliaLight(), {
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() }
  }))
  await helia.start()
  return helia
}

function emit (value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`)
}

async function provide (file: string, profile: 'unixfs-v1-2025' | 'unixfs-v0-2015'): Promise<void> {
  const { size } = await stat(file)
  const helia = await startHelia()
  const t0 = performance.now()
  const cid = await unixfs(helia).addByteStream(createReadStream(file, { highWaterMark: 1024 * 1024 }), { profile })
  const importSeconds = (performance.now() - t0) / 1000
  emit({
    ready: true,
    role: 'helia-provider',
    pid: process.pid,
    peerId: helia.libp2p.peerId.toString(),
    multiaddrs: helia.libp2p.getMultiaddrs().map(String),
    cid: cid.toString(),
    size,
    profile,
    importSeconds
  })
  const stop = (): void => {
    helia.stop().then(() => { process.exit(0) }, (err: unknown) => {
      logger.error({ err: describeError(err) }, 'helia did not stop cleanly')
      process.exit(1)
    })
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
}

async function fetch (cidText: string, size: number, providers: string[], fingerprint: string | undefined, timeoutMs: number, idleMs: number): Promise<void> {
  const cid = CID.parse(cidText)
  const addrs = providers.map(p => multiaddr(p))
  const helia = await startHelia()
  // Stalled: nothing arrived for idleMs (or the whole time ran out).
  const idle = new AbortController()
  const watchdog = setTimeout(() => { idle.abort() }, idleMs)
  const signal = AbortSignal.any([AbortSignal.timeout(timeoutMs), idle.signal])
  const meter = new BodyMeter(size, performance.now())
  try {
    const c0 = performance.now()
    await Promise.all(addrs.map(async ma => helia.libp2p.dial(ma, { signal })))
    const connectMs = performance.now() - c0
    const t0 = performance.now()
    meter.restart(t0)
    try {
      for await (const piece of unixfs(helia).cat(cid, { providers: addrs, signal })) {
        meter.add(piece)
        watchdog.refresh()
      }
    } catch (err) {
      // A transfer that stops making progress is a finding, not a crash: say how far it got.
      if (!signal.aborted) throw err
      emit({ ready: true, role: 'helia-fetcher', pid: process.pid, stalled: true, connectMs, bytes: meter.bytes, seconds: (performance.now() - t0) / 1000 })
      return
    }
    const result = meter.finish(`helia cat ${cidText}`, fingerprint)
    emit({ ready: true, role: 'helia-fetcher', pid: process.pid, stalled: false, connectMs, ...result, peakRss: await readStatusField(process.pid, 'VmHWM') })
  } finally {
    clearTimeout(watchdog)
    await helia.stop()
  }
}

const [mode, ...rest] = process.argv.slice(2)
const { values } = parseArgs({
  args: rest,
  options: {
    file: { type: 'string' },
    cid: { type: 'string' },
    size: { type: 'string' },
    fingerprint: { type: 'string' },
    provider: { type: 'string', multiple: true },
    timeout: { type: 'string', default: '600000' },
    idle: { type: 'string', default: '30000' },
    profile: { type: 'string', default: 'unixfs-v1-2025' }
  }
})
if (mode === 'provide' && values.file != null && (values.profile === 'unixfs-v1-2025' || values.profile === 'unixfs-v0-2015')) {
  await provide(values.file, values.profile)
} else if (mode === 'fetch' && values.cid != null && values.size != null && (values.provider?.length ?? 0) > 0) {
  await fetch(values.cid, Number(values.size), values.provider ?? [], values.fingerprint, Number(values.timeout), Number(values.idle))
  process.exit(0)
} else {
  throw new BadInputError('usage: helia-peer.ts provide --file F [--profile P] | fetch --cid C --size N --provider MA… [--fingerprint F]')
}
