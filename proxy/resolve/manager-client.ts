import { Pool } from 'undici'
import { decodeKey } from '../../core/chunk-crypto.ts'
import { tlsConnect } from '../../core/tls-client.ts'
import {
  BadInputError, CdnError, ConflictError, ForbiddenError, NotFoundError, TimeoutError,
  TooLargeError, UnauthorizedError, UpstreamError
} from '../../core/errors.ts'
import { CAPABILITY_HEADER } from '../capability.ts'
import { FAILOVER_STATUSES, ManagerRing, managerOrigin, tryManagers, TryNextManager } from '../../core/manager-failover.ts'
import type { DeadlineClock } from '../fetch/deadline.ts'
import { errorMessageOf, readJson } from '../fetch/http-body.ts'
import type { SourceAddress } from './sources.ts'

/** `GET /api/info`: how to reach and trust the manager. */
export interface ManagerInfo {
  /** this manager's own libp2p identity */
  peerId: string
  multiaddrs: string[]
  http: string
  /** the pool identity, which signs manifests, capabilities and node lists; absent from a manager older than several managers per pool */
  pool?: string
  /** the API URLs of the pool's live managers, this one included (absent from older managers) */
  managers?: string[]
}

/** The peer id whose signatures a manager's answers carry: the pool's, or, from an older manager, its own. */
export function signerOf (info: Pick<ManagerInfo, 'peerId' | 'pool'>): string {
  return info.pool ?? info.peerId
}

/** `GET /api/contents/<id>`: what the manager vouches for. */
export interface ManagerResolution {
  id: string
  /** the encoded manifest, still to be checked against the id and the signature */
  manifest: Uint8Array
  key: Uint8Array
  /** alive nodes with confirmed copies */
  holders: SourceAddress[]
  /** the holders' libp2p addresses, when the manager gave them: entry points to the DHT for when it is away */
  holderPeers?: Array<{ peerId: string, multiaddrs: string[] }>
}

/** `POST /api/reports`: a proxy saw a node serve bytes that do not match a chunk id. */
export interface BadCopyReport {
  content: string
  chunk: string
  /** the node's peer id */
  node: string
  reason: string
}

export interface CallOptions {
  signal?: AbortSignal
  /** ms (default: the client's) */
  timeoutMs?: number
}

export interface ResolveCallOptions extends CallOptions {
  /** a capability for a private content; sent as the `x-cdn-capability` header only */
  capability?: string
}

/** What the resolver needs of a manager; tests and the capability path substitute their own. */
export interface ManagerApi {
  resolve (id: string, options?: ResolveCallOptions): Promise<ManagerResolution>
}

/** What the node list needs of a manager: `GET /api/pool/nodes`, the signed record as received (still to be verified). */
export interface NodeListSource {
  poolNodes (options?: CallOptions): Promise<string>
}

/** What name resolution needs of a manager: `GET /api/names/<name>`, the signed record as received (still to be verified). */
export interface NameRecordSource {
  nameRecord (name: string, options?: ResolveCallOptions): Promise<string>
}

export interface BadCopyReporter {
  report (report: BadCopyReport, options?: CallOptions): Promise<void>
}

export interface ManagerClientInit {
  /** base URL, e.g. http://127.0.0.1:9000, or the URLs of several managers of one pool, tried in this order */
  url: string | readonly string[]
  /** ms per call (default 10 s) */
  timeoutMs?: number
  /** PEM of a private CA that signed an https manager's certificate (default: the system's CAs) */
  ca?: Buffer
}

export interface ManagerClientComponents {
  deadlines: DeadlineClock
}

const MAX_ANSWER_BYTES = 96 * 1024 * 1024

/**
 * The proxy's side of the manager HTTP API (PROTOCOLS.md), every call under
 * a deadline. Given several managers of one pool, every call fails over
 * (manager-failover.ts) and starts with the manager that answered last.
 */
export class ManagerClient implements ManagerApi, BadCopyReporter, NodeListSource, NameRecordSource {
  private readonly ring: ManagerRing
  /** one connection pool per manager origin, made when first used */
  private readonly pools = new Map<string, Pool>()
  private readonly ca: Buffer | undefined
  private readonly deadlines: DeadlineClock
  private readonly timeoutMs: number
  private closed = false

  constructor (components: ManagerClientComponents, init: ManagerClientInit) {
    this.ring = new ManagerRing(typeof init.url === 'string' ? [init.url] : init.url)
    this.ca = init.ca
    this.deadlines = components.deadlines
    this.timeoutMs = init.timeoutMs ?? 10_000
  }

  /** The origin of the manager tried first: the one that answered last. */
  get url (): string {
    return managerOrigin(this.ring.current)
  }

  /** Every manager URL the client may try, the configured ones first. */
  get urls (): readonly string[] {
    return this.ring.urls
  }

  /** Adds managers learned from a manager's `managers` list to the ones tried; returns those that were new. */
  learn (urls: readonly string[]): string[] {
    return this.ring.learn(urls)
  }

  async info (options: CallOptions = {}): Promise<ManagerInfo> {
    const body = await this.call('GET', '/api/info', undefined, options) as Partial<ManagerInfo> | null
    if (typeof body?.peerId !== 'string' || !Array.isArray(body.multiaddrs) || !body.multiaddrs.every(a => typeof a === 'string')) {
      throw new UpstreamError('manager /api/info answer lacks peerId or multiaddrs')
    }
    const info: ManagerInfo = { peerId: body.peerId, multiaddrs: body.multiaddrs, http: typeof body.http === 'string' ? body.http : this.url }
    if (typeof body.pool === 'string' && body.pool !== '') info.pool = body.pool
    if (Array.isArray(body.managers)) info.managers = body.managers.filter((u): u is string => typeof u === 'string' && u.length < 2048)
    return info
  }

  async resolve (id: string, options: ResolveCallOptions = {}): Promise<ManagerResolution> {
    const headers: Record<string, string> = options.capability == null ? {} : { [CAPABILITY_HEADER]: options.capability }
    let body: Record<string, any> | null
    try {
      body = await this.call('GET', `/api/contents/${encodeURIComponent(id)}`, undefined, options, headers) as Record<string, any> | null
    } catch (err) {
      // Refused is not broken: the viewer lacks a valid capability, and must hear so (403), not that the network failed (502).
      if (err instanceof UnauthorizedError || err instanceof ForbiddenError) {
        const hint = options.capability == null ? ' (a private content opens only with a capability link: ?cap=…)' : ''
        throw new ForbiddenError(`the manager refused to resolve ${id}: ${err.message}${hint}`, { cause: err })
      }
      throw err
    }
    if (body == null || typeof body.manifest !== 'string' || typeof body.key !== 'string' || !Array.isArray(body.holders)) {
      throw new UpstreamError(`manager answer for ${id} lacks manifest, key or holders`)
    }
    let key: Uint8Array
    try {
      key = decodeKey(body.key)
    } catch (err) {
      throw new UpstreamError(`manager answered an invalid key for ${id}`, { cause: err })
    }
    const holders: SourceAddress[] = []
    const holderPeers: Array<{ peerId: string, multiaddrs: string[] }> = []
    for (const h of body.holders) {
      if (typeof h?.peerId !== 'string') continue
      if (typeof h.http === 'string' && /^https?:\/\//.test(h.http)) holders.push({ id: h.peerId, url: h.http })
      if (Array.isArray(h.multiaddrs)) {
        const multiaddrs = (h.multiaddrs as unknown[]).filter((a): a is string => typeof a === 'string' && a.length < 1024)
        if (multiaddrs.length > 0) holderPeers.push({ peerId: h.peerId, multiaddrs })
      }
    }
    return { id, manifest: Buffer.from(body.manifest, 'base64'), key, holders, holderPeers }
  }

  async poolNodes (options: CallOptions = {}): Promise<string> {
    const body = await this.call('GET', '/api/pool/nodes', undefined, options) as { list?: unknown } | null
    if (typeof body?.list !== 'string') throw new UpstreamError('manager /api/pool/nodes answer lacks its signed list')
    return body.list
  }

  async nameRecord (name: string, options: ResolveCallOptions = {}): Promise<string> {
    const headers: Record<string, string> = options.capability == null ? {} : { [CAPABILITY_HEADER]: options.capability }
    let body: { record?: unknown } | null
    try {
      body = await this.call('GET', `/api/names/${encodeURIComponent(name)}`, undefined, options, headers) as { record?: unknown } | null
    } catch (err) {
      if (err instanceof UnauthorizedError || err instanceof ForbiddenError) {
        throw new ForbiddenError(`the manager refused to resolve the name ${name}: ${err.message}`, { cause: err })
      }
      throw err
    }
    if (typeof body?.record !== 'string') throw new UpstreamError(`manager answer for the name ${name} lacks its record`)
    return body.record
  }

  async report (report: BadCopyReport, options: CallOptions = {}): Promise<void> {
    await this.call('POST', '/api/reports', report, options)
  }

  async close (): Promise<void> {
    this.closed = true
    await Promise.all([...this.pools.values()].map(async p => { await p.destroy() }))
    this.pools.clear()
  }

  private poolFor (origin: string): Pool {
    let pool = this.pools.get(origin)
    if (pool == null) {
      pool = new Pool(origin, { connections: 4, keepAliveTimeout: 30_000, connect: { timeout: 5000, ...tlsConnect(this.ca) } })
      this.pools.set(origin, pool)
    }
    return pool
  }

  /** One call, on the managers in turn; each attempt has the whole per-call deadline (a reports or resolve is cheap to repeat). */
  private async call (method: 'GET' | 'POST', path: string, json: unknown, options: CallOptions, extra: Record<string, string> = {}): Promise<unknown> {
    if (this.closed) throw new UpstreamError('the manager client is closed')
    return await tryManagers(this.ring, async (url) => await this.callOne(managerOrigin(url), method, path, json, options, extra), options.signal)
  }

  private async callOne (origin: string, method: 'GET' | 'POST', path: string, json: unknown, options: CallOptions, extra: Record<string, string>): Promise<unknown> {
    const ms = options.timeoutMs ?? this.timeoutMs
    const what = `manager ${method} ${path}`
    const deadline = this.deadlines.start(ms, options.signal, `${what} took over ${ms} ms`)
    try {
      const { statusCode, body } = await this.poolFor(origin).request({
        path,
        method,
        signal: deadline.signal,
        headers: json === undefined ? extra : { ...extra, 'content-type': 'application/json' },
        body: json === undefined ? null : JSON.stringify(json)
      })
      if (statusCode >= 400) {
        const { message } = await errorMessageOf(body, statusCode)
        const error = errorForStatus(statusCode, message)
        throw FAILOVER_STATUSES.has(statusCode) ? new TryNextManager(error) : error
      }
      if (statusCode === 202 || statusCode === 204) {
        await body.dump()
        return undefined
      }
      return await readJson(body, MAX_ANSWER_BYTES, what)
    } catch (err) {
      if (deadline.expired) throw new TryNextManager(new TimeoutError(`${what} took over ${ms} ms`, { cause: err }))
      if (options.signal?.aborted === true) throw options.signal.reason
      if (err instanceof CdnError || err instanceof TryNextManager) throw err
      throw new TryNextManager(new UpstreamError(`manager at ${origin} is unreachable: ${err instanceof Error ? err.message : String(err)}`, { cause: err }))
    } finally {
      deadline.clear()
    }
  }
}

/** The manager's error status as the matching named error, carrying the manager's own message. */
function errorForStatus (status: number, message: string): CdnError {
  switch (status) {
    case 400: return new BadInputError(message)
    case 401: return new UnauthorizedError(message)
    case 403: return new ForbiddenError(message)
    case 404: return new NotFoundError(message)
    case 409: return new ConflictError(message)
    case 413: return new TooLargeError(message)
    case 504: return new TimeoutError(message)
    default: return new UpstreamError(`manager answered ${status}: ${message}`)
  }
}
