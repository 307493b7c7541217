import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { LRUCache } from 'lru-cache'
import { describeError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import type { ManagerInfo } from '../resolve/manager-client.ts'
import { managerOrigin } from '../../core/manager-failover.ts'

/** A libp2p peer the proxy met: a node, or the manager. */
export interface RememberedPeer {
  peerId: string
  multiaddrs: string[]
}

export interface RememberedManager extends ManagerInfo {
  /** the URL of the manager that told the proxy this identity */
  url: string
}

/** manager URLs kept from a pool's list */
const MAX_MANAGERS = 16

/** The file's shape; `v` lets a later version read an older file. */
interface StateFile {
  v: 1
  manager?: RememberedManager
  nodes: RememberedPeer[]
}

export interface PeerMemoryInit {
  /** the JSON file, e.g. <stateDir>/network.json */
  file: string
  /** nodes kept, most recently met first (default 64) */
  maxNodes?: number
  /** multiaddrs kept per peer (default 8) */
  maxAddrs?: number
  logger: Logger
}

/**
 * What the proxy must remember to work while its manager is away: the
 * manager's identity (whose manifest signatures to trust) and the libp2p
 * addresses of nodes (to join the DHT without the manager). Kept in a small
 * JSON file, written whole to a temp file and renamed, so a crash leaves the
 * old file or the new one, never half of one. No key and no content id is
 * ever written here.
 */
export class PeerMemory {
  private readonly file: string
  private readonly maxNodes: number
  private readonly maxAddrs: number
  private readonly logger: Logger
  private current: RememberedManager | undefined
  /** peer id → multiaddrs, the least recently met evicted first */
  private readonly peers: LRUCache<string, string[]>
  private dirty = false
  private saving: Promise<void> = Promise.resolve()

  constructor (init: PeerMemoryInit) {
    this.file = init.file
    this.maxNodes = init.maxNodes ?? 64
    this.maxAddrs = init.maxAddrs ?? 8
    this.logger = init.logger
    this.peers = new LRUCache({ max: this.maxNodes, dispose: (_addrs, _peerId, reason) => { if (reason === 'evict') this.dirty = true } })
  }

  /** Reads the file; a missing one is a first start, a damaged one is logged and ignored. */
  async load (): Promise<void> {
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch (err: any) {
      if (err?.code === 'ENOENT') return
      throw err
    }
    try {
      const state = JSON.parse(text) as Partial<StateFile>
      if (state.manager != null && isManager(state.manager)) this.current = state.manager
      for (const p of Array.isArray(state.nodes) ? [...state.nodes].reverse() : []) {
        if (isPeer(p)) this.peers.set(p.peerId, p.multiaddrs.slice(0, this.maxAddrs))
      }
    } catch (err) {
      this.logger.warn({ file: this.file, err: describeError(err) }, 'network state file is damaged; starting without it')
    }
  }

  /**
   * The remembered manager, if it was learned from one of these manager URLs
   * (or from a manager whose pool listed one of them): the pool behind another
   * URL is no reason to trust this one's signer.
   */
  manager (urls: string | readonly string[]): RememberedManager | undefined {
    const m = this.current
    if (m == null) return undefined
    const pool = new Set([m.url, ...(m.managers ?? [])].map(originOf))
    return (typeof urls === 'string' ? [urls] : urls).some(u => pool.has(originOf(u))) ? m : undefined
  }

  /** Remembered nodes, most recently met first. */
  nodes (): RememberedPeer[] {
    return [...this.peers.entries()].map(([peerId, multiaddrs]) => ({ peerId, multiaddrs }))
  }

  rememberManager (url: string, info: ManagerInfo): void {
    const next: RememberedManager = {
      url,
      peerId: info.peerId,
      multiaddrs: info.multiaddrs.slice(0, this.maxAddrs),
      http: info.http,
      ...(info.pool != null ? { pool: info.pool } : {}),
      ...(info.managers != null ? { managers: info.managers.slice(0, MAX_MANAGERS) } : {})
    }
    if (JSON.stringify(next) === JSON.stringify(this.current)) return
    this.current = next
    this.dirty = true
  }

  /** Remembers nodes met (holder hints, DHT providers, routing table peers); those without a usable address are skipped. */
  rememberNodes (peers: Iterable<RememberedPeer>): void {
    for (const p of peers) {
      if (!isPeer(p) || p.peerId === this.current?.peerId) continue
      const addrs = p.multiaddrs.filter(a => !a.endsWith('/http')).slice(0, this.maxAddrs)
      if (addrs.length === 0) continue
      const before = this.peers.peek(p.peerId)
      this.peers.set(p.peerId, addrs)
      if (before == null || before.join() !== addrs.join()) this.dirty = true
    }
  }

  /** Writes the file if something changed; saves never overlap. */
  async save (): Promise<void> {
    // A failed save must not stop the later ones (its own caller got the error).
    this.saving = this.saving.catch(() => {}).then(async () => {
      if (!this.dirty) return
      this.dirty = false
      const state: StateFile = { v: 1, ...(this.current == null ? {} : { manager: this.current }), nodes: this.nodes() }
      const tmp = `${this.file}.${process.pid}.tmp`
      try {
        await mkdir(dirname(this.file), { recursive: true })
        await writeFile(tmp, JSON.stringify(state, null, 2) + '\n')
        await rename(tmp, this.file)
      } catch (err) {
        this.dirty = true
        await rm(tmp, { force: true })
        throw err
      }
    })
    return this.saving
  }
}

/** A URL's origin, so `http://h:1/` and `http://h:1` are one manager; an unparsable one stays itself. */
function originOf (url: string): string {
  try {
    return managerOrigin(url)
  } catch {
    return url
  }
}

function isPeer (p: unknown): p is RememberedPeer {
  const v = p as Partial<RememberedPeer> | null
  if (v == null || typeof v.peerId !== 'string' || !Array.isArray(v.multiaddrs) || !v.multiaddrs.every(a => typeof a === 'string')) return false
  try {
    peerIdFromString(v.peerId)
    return true
  } catch {
    return false
  }
}

function isManager (m: unknown): m is RememberedManager {
  const v = m as Partial<RememberedManager> | null
  if (v?.pool != null && (typeof v.pool !== 'string' || !isPeer({ peerId: v.pool, multiaddrs: [] }))) return false
  if (v?.managers != null && !(Array.isArray(v.managers) && v.managers.every(u => typeof u === 'string'))) return false
  return typeof v?.url === 'string' && typeof v.http === 'string' && isPeer(v)
}
