/**
 * This manager's presence in the pool: it refreshes its row in the shared
 * catalog on every tick, and tells nodes, proxies and the CLI which managers
 * are alive, as a list signed by the pool identity (`manager-list`) for
 * nodes, and as API URLs in `/api/info`.
 *
 * A list is signed anew when the set of live managers changes or when the
 * one in hand is half way to its expiry; its sequence comes from the
 * catalog, so lists grow whichever manager signed them.
 */
import { signRecord, type ListedManager, type ManagerListBody } from '../../core/signed-record.ts'
import type { PoolNews } from '../../core/wire.ts'
import type { LeaseStore } from '../catalog/leases.ts'
import type { ManagerStore } from '../catalog/managers.ts'
import type { PoolMeta } from '../catalog/pool-meta.ts'
import type { PoolIdentity } from './pool-identity.ts'
import { CONTROLLER_LEASE } from './controller-lease.ts'

export interface PoolPresenceComponents {
  managers: Pick<ManagerStore, 'touch' | 'live' | 'leave'>
  meta: Pick<PoolMeta, 'nextSeq'>
  /** who holds the controller lease, for status (any manager can say) */
  leases?: Pick<LeaseStore, 'holder'>
  pool: PoolIdentity
  /** this manager as others reach it */
  self: () => ListedManager
  /** ms since the epoch (default Date.now) */
  now?: () => number
}

export interface PoolPresenceInit {
  /** a manager not seen for this long (database clock) is left off the lists */
  liveMs: number
  /** ms a signed list is valid (default 24 h) */
  validityMs?: number
}

export class PoolPresence {
  private readonly c: PoolPresenceComponents
  private readonly now: () => number
  private readonly liveMs: number
  private readonly validityMs: number
  private live: ListedManager[] = []
  private controllerId?: string
  private signed?: { fingerprint: string, at: number, record: string }
  private signing?: Promise<string>

  constructor (components: PoolPresenceComponents, init: PoolPresenceInit) {
    this.c = components
    this.now = components.now ?? Date.now
    this.liveMs = init.liveMs
    this.validityMs = init.validityMs ?? 24 * 3_600_000
  }

  /** Refreshes this manager's row and learns who else is alive. */
  async refresh (): Promise<ListedManager[]> {
    await this.c.managers.touch(this.c.self())
    this.live = (await this.c.managers.live(this.liveMs)).map(m => ({ peerId: m.peerId, multiaddrs: m.multiaddrs, http: m.http }))
    const lease = await this.c.leases?.holder(CONTROLLER_LEASE)
    this.controllerId = lease != null && lease.expiresAt > lease.now ? lease.holder : undefined
    return this.live
  }

  /** The manager running the controller, as of the last refresh (none while the lease is free). */
  controller (): { peerId: string, http?: string } | undefined {
    if (this.controllerId == null) return undefined
    return { peerId: this.controllerId, http: this.live.find(m => m.peerId === this.controllerId)?.http }
  }

  /** The live managers' API base URLs, as of the last refresh. */
  urls (): string[] {
    return this.live.map(m => m.http)
  }

  /**
   * What joined and ack replies tell a node: the pool id and the signed list
   * of live managers (once this manager is on it: before its first refresh,
   * while it is still binding its ports, the pool id alone).
   */
  async news (): Promise<PoolNews> {
    if (!this.live.some(m => m.peerId === this.c.self().peerId)) return { pool: this.c.pool.peerId }
    // A burst of heartbeats after a change waits for one signature rather than each signing its own.
    this.signing ??= this.list().finally(() => { this.signing = undefined })
    return { pool: this.c.pool.peerId, managers: await this.signing }
  }

  /** Leaves the list at once on a clean stop. */
  async leave (): Promise<void> {
    await this.c.managers.leave(this.c.self().peerId)
  }

  private async list (): Promise<string> {
    const fingerprint = JSON.stringify(this.live)
    const now = this.now()
    const s = this.signed
    if (s != null && s.fingerprint === fingerprint && now - s.at < this.validityMs / 2) return s.record
    const body: ManagerListBody = {
      kind: 'manager-list',
      iss: this.c.pool.peerId,
      iat: now,
      exp: now + this.validityMs,
      seq: await this.c.meta.nextSeq(),
      managers: this.live
    }
    const record = await signRecord(body, this.c.pool.privateKey)
    this.signed = { fingerprint, at: now, record }
    return record
  }
}
