/**
 * Ports that outlive a restart. A daemon's ports are part of its address:
 * the manager's libp2p port is in every node's `--manager`, a node's data
 * port is in its provider records. So the ports a data directory used are
 * kept in `<dir>/ports.json` and taken again on the next start unless the
 * operator names others.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { BadInputError, CdnError } from './errors.ts'
import { replaceFile } from './replace-file.ts'

/** A port someone else holds; `what` names it (`http`, `p2p`) so the CLI can name the flag that changes it. */
export class PortInUseError extends CdnError {
  readonly port: number
  readonly host: string
  readonly what: string
  /** the flag that changes this port, once the CLI named it */
  readonly flag?: string
  constructor (what: string, host: string, port: number, options?: ErrorOptions & { flag?: string }) {
    const fix = options?.flag != null ? `: choose another with ${options.flag}` : ''
    // The cause is not kept: libp2p's says the same over a dozen lines, and this one line is the whole story.
    super(`${what === 'p2p' ? 'libp2p' : 'HTTP'} port ${port} on ${host} is already in use${fix}`, 'ERR_PORT_IN_USE', 500)
    this.port = port
    this.host = host
    this.what = what
    this.flag = options?.flag
  }
}

export type PortSource = 'flag' | 'saved' | 'default'

export interface PlannedPort {
  port: number
  /** where the number came from: a saved port may be given up for another when taken, a named one may not */
  source: PortSource
}

const FILE = 'ports.json'

export class PortBook {
  private readonly path: string
  private readonly saved: Record<string, number>

  private constructor (path: string, saved: Record<string, number>) {
    this.path = path
    this.saved = saved
  }

  static async open (dir: string): Promise<PortBook> {
    const path = join(dir, FILE)
    let saved: Record<string, number> = {}
    try {
      const parsed: unknown = JSON.parse(await readFile(path, 'utf8'))
      if (parsed == null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BadInputError(`${path} is not a JSON object`)
      for (const [k, v] of Object.entries(parsed)) if (isPort(v)) saved[k] = v
    } catch (err: any) {
      if (err?.code !== 'ENOENT') throw new BadInputError(`cannot read ${path}: ${String(err?.message ?? err)}`, { cause: err })
      saved = {}
    }
    return new PortBook(path, saved)
  }

  /** The operator's port if named, else the one saved for this directory, else the role's default. */
  plan (name: string, named: number | undefined, fallback: number): PlannedPort {
    if (named != null) return { port: named, source: 'flag' }
    const saved = this.saved[name]
    if (saved != null) return { port: saved, source: 'saved' }
    return { port: fallback, source: 'default' }
  }

  /** Remembers the ports actually bound (ephemeral ones included). */
  async record (ports: Record<string, number>): Promise<void> {
    Object.assign(this.saved, ports)
    await replaceFile(this.path, Buffer.from(`${JSON.stringify(this.saved)}\n`))
  }
}

function isPort (v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 && v < 65536
}

/**
 * Binds with `bind(port)`; when a saved port turned out taken and
 * `fallbackToAny` allows it, binds any free port instead and says so through
 * `onFallback`. Anything else taken is a PortInUseError.
 */
export async function bindPlanned<T> (planned: PlannedPort, what: string, host: string, bind: (port: number) => Promise<T>, opts: { fallbackToAny: boolean, onFallback?: (port: number) => void }): Promise<T> {
  try {
    return await bind(planned.port)
  } catch (err) {
    if (!isAddressInUse(err)) throw err
    if (planned.source === 'saved' && opts.fallbackToAny && planned.port !== 0) {
      opts.onFallback?.(planned.port)
      return await bind(0)
    }
    throw new PortInUseError(what, host, planned.port, { cause: err })
  }
}

/** Node's EADDRINUSE, also the one libp2p wraps into its UnsupportedListenAddressesError (it keeps only the message). */
export function isAddressInUse (err: unknown): boolean {
  const e = err as { code?: unknown, message?: unknown } | null
  if (e?.code === 'EADDRINUSE') return true
  return typeof e?.message === 'string' && e.message.includes('EADDRINUSE')
}

/** `server.listen` as a promise that fails with the listen error instead of an unhandled 'error' event. */
export async function listenHttp (server: Pick<Server, 'listen' | 'once' | 'off' | 'address'>, host: string, port: number): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => { reject(err) }
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  return server.address() as AddressInfo
}
