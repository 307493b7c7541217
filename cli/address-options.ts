/**
 * The address flags every daemon shares: where it listens (`--listen`, which
 * may be a wildcard) and what it tells other hosts (`--announce`), plus its
 * ports. A port someone else holds is reported with the flag that changes it.
 */
import { type Command, InvalidArgumentError } from 'commander'
import { PortInUseError } from '../core/ports.ts'

function collect (v: string, prev: string[] = []): string[] { return [...prev, v] }

function portArg (flag: string) {
  return (v: string): number => {
    const n = Number(v)
    if (!Number.isSafeInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError(`${flag} must be a port number (0: any free port)`)
    return n
  }
}

/** `--listen`, `--announce`, `--http-port` and `--p2p-port` on a daemon's start command. */
export function addAddressOptions (cmd: Command, defaults: { http: string, p2p: string }): Command {
  return cmd
    .option('--listen <address>', 'address to listen on, e.g. 0.0.0.0 or :: for every interface (default 127.0.0.1); a /multiaddr sets a libp2p listen address instead (repeatable)', collect)
    .option('--announce <address>', 'address other hosts use: http://host:port for HTTP, /ip4/…/tcp/… for libp2p, or a host for both (repeatable; default: the listen address, or the first external interface address on a wildcard)', collect)
    .option('--http-port <port>', `HTTP port (0: any free port; default ${defaults.http})`, portArg('--http-port'))
    .option('--p2p-port <port>', `libp2p TCP port (0: any free port; default ${defaults.p2p})`, portArg('--p2p-port'))
    .option('--http-host <host>', 'same as --listen HOST (kept for old scripts)')
}

export interface AddressConfig {
  httpHost?: string
  listen?: string[]
  httpPort?: number
  p2pPort?: number
  announce?: string[]
}

/** The daemon config fields for what the flags (or a config file) said. */
export function addressConfig (o: { listen?: string[], announce?: string[], httpPort?: number, p2pPort?: number, httpHost?: string }): AddressConfig {
  const listen = o.listen ?? []
  const multiaddrs = listen.filter(l => l.startsWith('/'))
  const hosts = listen.filter(l => !l.startsWith('/'))
  if (hosts.length > 1) throw new InvalidArgumentError(`--listen names two hosts (${hosts.join(', ')}); give one, e.g. 0.0.0.0`)
  return {
    httpHost: hosts[0] ?? o.httpHost,
    listen: multiaddrs.length > 0 ? multiaddrs : undefined,
    httpPort: o.httpPort,
    p2pPort: o.p2pPort,
    announce: o.announce
  }
}

/** Adds the flag that changes a taken port to the error's message. */
export async function namingPortFlags<T> (start: () => Promise<T>, flags: Record<string, string>): Promise<T> {
  try {
    return await start()
  } catch (err) {
    if (err instanceof PortInUseError && flags[err.what] != null) {
      throw new PortInUseError(err.what, err.host, err.port, { cause: err.cause, flag: flags[err.what] })
    }
    throw err
  }
}
