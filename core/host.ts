import { mkdir, readFile, writeFile, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { tcpMultiaddr } from './addresses.ts'
import { BadInputError } from './errors.ts'

/** Our DHT is private: peers of the public IPFS network speak another protocol id and never mix in. */
export const DHT_PROTOCOL = '/cdn/kad/1.0.0'
export const PROTOCOL_PREFIX = 'cdn'

export type Host = Libp2p<{ dht: KadDHT, identify: unknown, ping: unknown }>

export interface HostInit {
  privateKey: PrivateKey
  /** multiaddrs to listen on, default one ephemeral loopback TCP port */
  listen?: string[]
  /** extra multiaddrs to announce, e.g. the node's HTTP data address `/ip4/…/tcp/…/http` */
  announce?: string[]
  /**
   * The host other peers reach this one at. Every TCP address announced is
   * rewritten to it (same port): a wildcard listener would otherwise be
   * announced on every interface, loopback and container bridges included.
   */
  announceHost?: string
  /** multiaddrs announced instead of the listen addresses (the operator's `--announce /ip4/…/tcp/…`) */
  reachableAt?: string[]
  /** DHT servers answer queries and hold records (nodes, manager); clients only ask (proxies, the CLI) */
  dhtServer: boolean
}

/** Builds the one libp2p stack every role uses: TCP, noise, yamux, identify, ping and our private Kademlia DHT. */
export async function createHost (init: HostInit): Promise<Host> {
  const host = await createLibp2p({
    privateKey: init.privateKey,
    addresses: {
      listen: init.listen ?? ['/ip4/127.0.0.1/tcp/0'],
      // libp2p ignores appendAnnounce once announce is set, so the extra addresses go into both.
      ...(init.reachableAt != null && init.reachableAt.length > 0 ? { announce: [...init.reachableAt, ...(init.announce ?? [])] } : {}),
      appendAnnounce: init.announce ?? [],
      ...(init.announceHost != null ? { announceFilter: (addrs: Multiaddr[]) => rewriteHost(addrs, init.announceHost!) } : {})
    },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify({ protocolPrefix: PROTOCOL_PREFIX }),
      ping: ping({ protocolPrefix: PROTOCOL_PREFIX }),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: !init.dhtServer,
        // Queries wait for the first self-query; the 1 s default would add a second to every `cdn get`.
        initialQuerySelfInterval: 50,
        // Loopback and private addresses are the whole point in a private pool.
        peerInfoMapper: passthroughMapper
      })
    }
  })
  return host as unknown as Host
}

/** Every TCP address but the /http ones, moved to `host` (port and /p2p kept), without duplicates. */
export function rewriteHost (addrs: Multiaddr[], host: string): Multiaddr[] {
  const seen = new Set<string>()
  const out: Multiaddr[] = []
  for (const ma of addrs) {
    const parts = ma.getComponents()
    let next = ma
    const ip = parts[0]
    if (!parts.some(p => p.name === 'http') && (ip?.name === 'ip4' || ip?.name === 'ip6') && parts[1]?.name === 'tcp') {
      const rest = parts.slice(1).map(p => `/${p.name}${p.value != null ? `/${p.value}` : ''}`).join('')
      next = multiaddr(`${tcpMultiaddr(host, 0).replace(/\/tcp\/0$/, '')}${rest}`)
    }
    const key = next.toString()
    if (seen.has(key)) continue
    seen.add(key)
    out.push(next)
  }
  return out
}

/** Dials bootstrap peers so the routing table fills; unreachable ones are reported, not fatal. */
export async function dialBootstrap (host: Libp2p, addrs: string[], signal?: AbortSignal): Promise<{ ok: string[], failed: Array<{ addr: string, error: string }> }> {
  const ok: string[] = []
  const failed: Array<{ addr: string, error: string }> = []
  await Promise.all(addrs.map(async (addr) => {
    try {
      await host.dial(parseMultiaddr(addr), { signal: signal ?? AbortSignal.timeout(10_000) })
      ok.push(addr)
    } catch (err) {
      failed.push({ addr, error: err instanceof Error ? err.message : String(err) })
    }
  }))
  return { ok, failed }
}

export function parseMultiaddr (text: string): Multiaddr {
  try {
    return multiaddr(text)
  } catch (err) {
    throw new BadInputError(`invalid multiaddr "${text}"`, { cause: err })
  }
}

/** Loads the peer's Ed25519 identity from `path`, creating it on first start. */
export async function loadOrCreateKey (path: string): Promise<PrivateKey> {
  try {
    return privateKeyFromProtobuf(await readFile(path))
  } catch (err: any) {
    if (err?.code !== 'ENOENT') throw err
  }
  const key = await generateKeyPair('Ed25519')
  await mkdir(dirname(path), { recursive: true })
  const tmp = `${path}.tmp`
  await writeFile(tmp, privateKeyToProtobuf(key), { mode: 0o600 })
  await rename(tmp, path)
  return key
}

/** The HTTP base URL announced in a provider record's `/http` multiaddr, if any. */
export function httpUrlFromMultiaddrs (addrs: Multiaddr[]): string | undefined {
  for (const ma of addrs) {
    const parts = ma.getComponents()
    if (parts.at(-1)?.name !== 'http') continue
    const ip = parts.find(p => p.name === 'ip4' || p.name === 'ip6' || p.name === 'dns4' || p.name === 'dns')
    const port = parts.find(p => p.name === 'tcp')
    if (ip?.value == null || port?.value == null) continue
    const hostPart = ip.name === 'ip6' ? `[${ip.value}]` : ip.value
    return `http://${hostPart}:${port.value}`
  }
  return undefined
}

/** The `/http` multiaddr a node announces for its data plane. */
export function httpMultiaddr (url: string): string {
  const u = new URL(url)
  const host = u.hostname.replace(/^\[|\]$/g, '')
  const proto = host.includes(':') ? 'ip6' : /^\d+\.\d+\.\d+\.\d+$/.test(host) ? 'ip4' : 'dns4'
  return `/${proto}/${host}/tcp/${u.port === '' ? '80' : u.port}/http`
}
