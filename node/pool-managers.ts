/**
 * Which managers this node belongs to: the pool id, learnt from the manager
 * its configuration names, and the highest-seq manager list that pool signed.
 * It answers the two questions several managers raise: whose orders to obey
 * (`allows`) and whom to heartbeat to, in failover order (`targets`).
 *
 * Both are kept in `pool.json` in the data directory, so a node restarted
 * while its configured manager is dead still reaches the pool's others.
 */
import { readFile } from 'node:fs/promises'
import { peerIdFromString } from '@libp2p/peer-id'
import { BadInputError, CdnError, describeError, ProtocolError } from '../core/errors.ts'
import { parseMultiaddr } from '../core/host.ts'
import type { Logger } from '../core/log.ts'
import { replaceFile } from '../core/replace-file.ts'
import { verifyRecord, type ManagerListBody } from '../core/signed-record.ts'
import type { PoolNews } from '../core/wire.ts'

/** A manager as the node dials it. */
export interface ManagerTarget {
  /** noise proves it on every stream dialled to one of `multiaddrs` */
  peerId: string
  /** libp2p addresses, each ending in /p2p/<peerId> */
  multiaddrs: string[]
}

/** A manager sent a pool id other than the one this node belongs to. */
export class PoolMismatchError extends CdnError {
  constructor (message: string) { super(message, 'ERR_POOL_MISMATCH', 403) }
}

export interface PoolManagersComponents {
  logger: Logger
  /** for tests; default Date.now */
  now?: () => number
}

export interface PoolManagersInit {
  /** the manager the configuration names (`--manager`): the only one the pool id is learnt from */
  configured: ManagerTarget
  /** where the pool id and the kept list are persisted (`<data dir>/pool.json`) */
  file: string
}

/** A list naming more managers than this is no pool's list. */
const MAX_LISTED = 256
const MAX_ADDRS = 16

interface Kept {
  pool?: string
  /** the encoded record, as persisted */
  encoded?: string
  list?: ManagerListBody
}

export class PoolManagers {
  private readonly log: Logger
  private readonly now: () => number
  private readonly configured: ManagerTarget
  private readonly file: string
  private kept: Kept

  private constructor (components: PoolManagersComponents, init: PoolManagersInit, kept: Kept) {
    this.log = components.logger
    this.now = components.now ?? Date.now
    this.configured = init.configured
    this.file = init.file
    this.kept = kept
  }

  /** Loads what an earlier run kept; a missing file is a node that never heard of its pool yet. */
  static async open (components: PoolManagersComponents, init: PoolManagersInit): Promise<PoolManagers> {
    return new PoolManagers(components, init, await load(init.file, components.logger))
  }

  /** The pool id, once the configured manager told it (undefined with a manager from before several managers). */
  get pool (): string | undefined {
    return this.kept.pool
  }

  /** The kept list's sequence number. */
  get seq (): number | undefined {
    return this.kept.list?.seq
  }

  /** Whether orders from this peer are obeyed: the configured manager's, and those of every manager on the kept list. */
  allows (peer: string): boolean {
    if (peer === this.configured.peerId) return true
    return this.kept.list?.managers.some(m => m.peerId === peer) === true
  }

  /**
   * Whom to heartbeat to, in failover order: the configured manager first
   * (with the list's addresses for it after the configured one), then the
   * list's others in the list's order. Listed managers without an address are
   * left out: they may still give orders.
   */
  targets (): ManagerTarget[] {
    const listed = this.kept.list?.managers ?? []
    const own = listed.find(m => m.peerId === this.configured.peerId)
    const first: ManagerTarget = {
      peerId: this.configured.peerId,
      multiaddrs: [...new Set([...this.configured.multiaddrs, ...(own?.multiaddrs ?? [])])]
    }
    const others = listed
      .filter(m => m.peerId !== this.configured.peerId && m.multiaddrs.length > 0)
      .map(m => ({ peerId: m.peerId, multiaddrs: [...m.multiaddrs] }))
    return [first, ...others]
  }

  /**
   * Takes the pool news of a reply from `from` (a peer id noise proved). The
   * pool id is adopted only from the configured manager; a different one,
   * from anyone, is refused with a PoolMismatchError (that manager serves
   * another pool: the caller moves on). A list that does not verify, or is
   * no newer than the kept one, is left aside; the reply itself stands.
   */
  async learn (news: PoolNews, from: string): Promise<void> {
    let changed = false
    if (news.pool != null) changed = this.takePool(news.pool, from)
    if (news.managers != null && this.kept.pool != null) changed = await this.takeList(news.managers, from) || changed
    if (changed) await this.save()
  }

  /** Persists what is kept. A failed write is logged, not thrown: the manager that answered is not at fault, and the next change writes again. */
  private async save (): Promise<void> {
    const body = { pool: this.kept.pool, ...(this.kept.encoded != null ? { managers: this.kept.encoded } : {}) }
    try {
      await replaceFile(this.file, Buffer.from(`${JSON.stringify(body)}\n`))
    } catch (err) {
      this.log.error({ file: this.file, err: describeError(err) }, 'could not keep the pool id and manager list on disk')
    }
  }

  private takePool (pool: string, from: string): boolean {
    if (this.kept.pool === pool) return false
    if (this.kept.pool != null) {
      this.log.error({ manager: from, pool: this.kept.pool, sent: pool }, 'a manager answered for another pool; refused')
      throw new PoolMismatchError(`manager ${from} answered for pool ${pool}, but this node belongs to pool ${this.kept.pool}`)
    }
    // Only the configured manager is the operator's word; any other is known only through the pool's own list.
    if (from !== this.configured.peerId) return false
    this.kept = { pool }
    this.log.info({ pool, manager: from }, 'learnt the pool id from the configured manager')
    return true
  }

  private async takeList (encoded: string, from: string): Promise<boolean> {
    if (encoded === this.kept.encoded) return false
    let list: ManagerListBody
    try {
      list = await verifiedList(encoded, this.kept.pool!, this.now())
    } catch (err) {
      this.log.error({ manager: from, err: describeError(err) }, 'a manager sent a manager list that does not verify; kept the one we had')
      return false
    }
    if (this.kept.list != null && list.seq <= this.kept.list.seq) {
      if (list.seq < this.kept.list.seq) this.log.debug({ manager: from, seq: list.seq, kept: this.kept.list.seq }, 'ignored an older manager list')
      return false
    }
    this.kept = { ...this.kept, encoded, list }
    this.log.info({ seq: list.seq, managers: list.managers.map(m => m.peerId) }, 'new manager list')
    return true
  }
}

/** Checks a manager list's signature (by `pool`), expiry as of `now`, and shape. */
async function verifiedList (encoded: string, pool: string, now: number): Promise<ManagerListBody> {
  const { body } = await verifyRecord<ManagerListBody>(encoded, { kind: 'manager-list', trusted: [pool], now })
  checkListShape(body)
  return body
}

function bad (what: string): never {
  throw new ProtocolError(`malformed manager list: ${what}`)
}

function checkListShape (body: ManagerListBody): void {
  if (!Number.isSafeInteger(body.seq) || body.seq < 0) bad('seq must be a whole number')
  if (!Array.isArray(body.managers) || body.managers.length > MAX_LISTED) bad(`managers must be a list of at most ${MAX_LISTED}`)
  for (const m of body.managers) {
    if (m == null || typeof m !== 'object' || typeof m.peerId !== 'string' || typeof m.http !== 'string') bad('each manager needs a peerId and an http URL')
    try {
      peerIdFromString(m.peerId)
    } catch {
      bad(`${m.peerId.slice(0, 80)} is not a peer id`)
    }
    if (!Array.isArray(m.multiaddrs) || m.multiaddrs.length > MAX_ADDRS) bad(`multiaddrs must be a list of at most ${MAX_ADDRS}`)
    // An address without the manager's own /p2p/ id would let the dial reach whoever listens there.
    m.multiaddrs = m.multiaddrs.filter(a => typeof a === 'string' && p2pIdOf(a) === m.peerId)
  }
}

function p2pIdOf (addr: string): string | undefined {
  try {
    return parseMultiaddr(addr).getComponents().find(c => c.name === 'p2p')?.value
  } catch {
    return undefined
  }
}

async function load (file: string, log: Logger): Promise<Kept> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err: any) {
    if (err?.code === 'ENOENT') return {}
    throw err
  }
  let saved: Record<string, unknown>
  try {
    saved = JSON.parse(text)
    if (saved == null || typeof saved !== 'object' || typeof saved.pool !== 'string') throw new Error('no pool id')
  } catch (err) {
    // Written atomically by this module: damage is someone's hand, and guessing the pool would be worse than stopping.
    throw new BadInputError(`cannot read ${file} (${describeError(err)}); delete it to learn the pool again from the configured manager`, { cause: err })
  }
  const pool = saved.pool as string
  if (typeof saved.managers !== 'string') return { pool }
  try {
    // Checked as of the epoch, i.e. not for expiry: a list that expired while the
    // node was down is still the best guess of whom to heartbeat to when the
    // configured manager is dead. Each target proves its id when dialled, and
    // the first answer brings a fresh list; a new list must verify unexpired.
    const list = await verifiedList(saved.managers, pool, 0)
    return { pool, encoded: saved.managers, list }
  } catch (err) {
    log.error({ file, err: describeError(err) }, 'the kept manager list does not verify; starting with the configured manager only')
    return { pool }
  }
}
