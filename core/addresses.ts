/**
 * The two addresses of every daemon: the one it listens on (which may be a
 * wildcard such as 0.0.0.0 or ::) and the one it tells others to use. The
 * second is what goes into provider records, heartbeats, staging URLs and the
 * join command, so it must never be a wildcard: another host cannot dial
 * 0.0.0.0.
 */
import { isIP } from 'node:net'
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os'
import { BadInputError } from './errors.ts'

export type Interfaces = ReturnType<typeof networkInterfaces>

/** 0.0.0.0, ::, or an empty host: listening on every interface. */
export function isWildcard (host: string): boolean {
  const h = stripBrackets(host)
  return h === '' || h === '0.0.0.0' || h === '::' || h === '::0'
}

export function stripBrackets (host: string): string {
  return host.replace(/^\[(.*)\]$/, '$1')
}

/** A host as it appears in a URL: IPv6 literals in brackets. */
export function urlHost (host: string): string {
  const h = stripBrackets(host)
  return h.includes(':') ? `[${h}]` : h
}

/**
 * The host a daemon announces when the operator named none: the listen
 * address itself when it is specific, else the first address of a
 * non-internal interface (of the listen address's family first), else
 * loopback.
 */
export function defaultAnnounceHost (listenHost: string, interfaces: Interfaces = networkInterfaces()): string {
  const listen = stripBrackets(listenHost)
  if (!isWildcard(listen)) return listen
  const external: NetworkInterfaceInfo[] = []
  for (const list of Object.values(interfaces)) {
    for (const a of list ?? []) {
      // Link-local IPv6 needs a zone id to be dialled: useless to another host.
      if (!a.internal && !(a.family === 'IPv6' && a.address.toLowerCase().startsWith('fe80:'))) external.push(a)
    }
  }
  const wanted = listen.includes(':') ? 'IPv6' : 'IPv4'
  const pick = external.find(a => a.family === wanted) ?? external[0]
  if (pick != null) return pick.address
  return wanted === 'IPv6' ? '::1' : '127.0.0.1'
}

/** `/ip4/…/tcp/P`, `/ip6/…/tcp/P` or `/dns/…/tcp/P` for a host and port. */
export function tcpMultiaddr (host: string, port: number): string {
  const h = stripBrackets(host)
  const proto = isIP(h) === 6 ? 'ip6' : isIP(h) === 4 ? 'ip4' : 'dns'
  return `/${proto}/${h}/tcp/${port}`
}

/** The libp2p TCP listen address for a listen host: a wildcard stays a wildcard of its family. */
export function listenMultiaddr (host: string, port: number): string {
  if (!isWildcard(host)) return tcpMultiaddr(host, port)
  return stripBrackets(host).includes(':') ? `/ip6/::/tcp/${port}` : `/ip4/0.0.0.0/tcp/${port}`
}

/** The TCP port of the first multiaddr that has one. */
export function firstTcpPort (addrs: string[]): number | undefined {
  for (const a of addrs) {
    const m = /\/tcp\/(\d+)/.exec(a)
    if (m != null) return Number(m[1])
  }
  return undefined
}

/** Parses an announced data-plane or API address; it must name a host and a port and be no wildcard. */
export function parseAnnounceUrl (text: string): URL {
  let url: URL
  try {
    url = new URL(text)
  } catch (err) {
    throw new BadInputError(`invalid announce address "${text}": expected http://host:port`, { cause: err })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BadInputError(`invalid announce address "${text}": expected http://host:port`)
  if (url.port === '') throw new BadInputError(`announce address "${text}" needs an explicit port`)
  if (isWildcard(url.hostname)) throw new BadInputError(`announce address "${text}" is a wildcard; other hosts cannot reach it: name this host's address`)
  return url
}

/** An HTTP base URL without a trailing slash. */
export function httpBase (host: string, port: number): string {
  return `http://${urlHost(host)}:${port}`
}

/**
 * What a daemon announces, split out of the operator's `--announce` values:
 * an `http://host:port` URL for its HTTP side, `/…` multiaddrs for libp2p,
 * or a bare host meaning both.
 */
export interface AnnounceSpec {
  http?: string
  p2p: string[]
  host?: string
}

export function splitAnnounce (values: string[] | undefined): AnnounceSpec {
  const out: AnnounceSpec = { p2p: [] }
  for (const raw of values ?? []) {
    const v = raw.trim()
    if (v.startsWith('/')) {
      out.p2p.push(v)
    } else if (/^[a-z]+:\/\//i.test(v)) {
      if (out.http != null) throw new BadInputError(`--announce names two HTTP addresses (${out.http}, ${v}); give one`)
      out.http = parseAnnounceUrl(v).origin
    } else {
      if (v === '' || isWildcard(v)) throw new BadInputError(`announce host "${raw}" is a wildcard; other hosts cannot reach it`)
      out.host = stripBrackets(v)
    }
  }
  return out
}
