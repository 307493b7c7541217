/**
 * The nodes the pool vouches for: a `node-list` record signed by the manager's
 * identity (core/signed-record.ts), fetched from `GET /api/pool/nodes`. The
 * proxy fetches only from peers on it: anybody can add provider records to
 * the DHT, and a proxy that followed them would send requests wherever a
 * stranger says. The list is kept in the state directory, so a proxy with the
 * manager down still knows whom to trust; the highest sequence number wins.
 */
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { raceSignal } from 'race-signal'
import { describeError, NotFoundError, UnavailableError } from '../../core/errors.ts'
import type { Logger } from '../../core/log.ts'
import { replaceFile } from '../../core/replace-file.ts'
import { verifyRecord, type NodeListBody } from '../../core/signed-record.ts'
import type { NodeListSource } from './manager-client.ts'
import { withDefaults } from '../../core/with-defaults.ts'
import type { SourceOrigin, SourceVouching } from './provider-search.ts'
import { retryLoop } from './retry-loop.ts'
import type { SourceAddress } from './sources.ts'
import { readKeptFile } from '../state/kept-file.ts'

export interface NodeListComponents {
  manager: NodeListSource
  /** peer ids whose signature is trusted (the manager's, live or remembered); undefined while none is known */
  trusted: () => string[] | undefined
  logger: Logger
  /** told each source left out because the list does not vouch for it */
  onIgnored?: (from: SourceOrigin) => void
  /** ms since the epoch, for expiry (default Date.now) */
  now?: () => number
  /** settles when the manager's identity may be known (its first answer, or none): the chore starts after it */
  ready?: () => Promise<void>
}

export interface NodeListInit {
  /** where the last verified list is kept, e.g. `<stateDir>/node-list.json` (default: nowhere) */
  file?: string
  /** ms between refreshes of a list that is in hand (default 60 s) */
  refreshMs?: number
  /** ms before the first retry after a failed refresh; doubles up to refreshMs (default 2 s) */
  retryMs?: number
  /** a source the list does not know triggers at most one refresh per this many ms (default 5 s) */
  unknownGapMs?: number
  /** ms a resolution waits for such a refresh (default 2 s) */
  unknownWaitMs?: number
  /** ms for one fetch of the list (default 5 s) */
  timeoutMs?: number
}

interface Held {
  body: NodeListBody
  encoded: string
  /** peer id → data-plane URL, as the pool vouches for them */
  nodes: Map<string, string>
}

/** The state file's shape: the record exactly as signed, so it is checked again on every load. */
interface StateFile {
  v: 1
  list: string
}

/**
 * The signed node list: loaded from disk, refreshed from the manager as a
 * chore (and at once when the manager comes back, or when a source it does
 * not know turns up), and asked by the resolver whom to fetch from.
 *
 * Until the manager serves `/api/pool/nodes` (an older manager answers 404)
 * and no list is in hand, the holders the manager names in its own resolve
 * answers are taken as vouched for, with a warning; DHT provider records
 * never are.
 */
export class PoolNodeList implements SourceVouching {
  private readonly c: NodeListComponents
  private readonly o: Required<Omit<NodeListInit, 'file'>>
  private readonly file: string | undefined
  private readonly now: () => number
  private readonly stopping = new AbortController()
  private held: Held | undefined
  private routeMissing = false
  private warnedMissing = false
  private failing = false
  private running: Promise<boolean> | undefined
  private lastUnknownRefresh = -Infinity
  private loop: Promise<void> | undefined

  constructor (components: NodeListComponents, init: NodeListInit = {}) {
    this.c = components
    this.file = init.file
    this.o = withDefaults<Omit<NodeListInit, 'file'>>({ refreshMs: 60_000, retryMs: 2000, unknownGapMs: 5000, unknownWaitMs: 2000, timeoutMs: 5000 }, init)
    this.now = components.now ?? Date.now
  }

  /** The list in hand: its sequence number, expiry and size (for the dashboard and tests). */
  get state (): { seq: number, exp: number, nodes: number, expired: boolean } | undefined {
    const h = this.usable()
    return h == null ? undefined : { seq: h.body.seq, exp: h.body.exp, nodes: h.nodes.size, expired: h.body.exp <= this.now() }
  }

  /** Whether the list in hand names this peer. */
  lists (peerId: string): boolean {
    return this.usable()?.nodes.has(peerId) === true
  }

  /** Reads the kept list, if any; a missing, damaged or untrusted file is a start without one. */
  async load (): Promise<void> {
    if (this.file == null) return
    const state = await readKeptFile<StateFile>(this.file, 'node list', this.c.logger)
    if (state == null) return
    try {
      // Expired or not: with the manager away, the last list it signed is the best word there is.
      await this.adopt(String(state.list), false)
    } catch (err) {
      this.c.logger.warn({ file: this.file, err: describeError(err) }, 'kept node list is unusable; waiting for the manager\'s')
    }
  }

  /** Runs the refresh chore until stop(). Starting twice is harmless. */
  start (): void {
    this.loop ??= this.run()
  }

  async stop (): Promise<void> {
    this.stopping.abort()
    await this.loop
    await this.running?.catch(() => {})
  }

  /** The manager answered again: a list that failed to refresh or has expired is fetched now, not at the next turn. */
  poke (): void {
    const h = this.held
    if (!this.failing && h != null && h.body.exp > this.now()) return
    this.refresh().catch((err: unknown) => { this.c.logger.debug({ err: describeError(err) }, 'node list refresh failed') })
  }

  /** One fetch of the list (shared by concurrent callers); true when a newer list was adopted. */
  async refresh (signal?: AbortSignal): Promise<boolean> {
    this.running ??= this.fetchOnce().finally(() => { this.running = undefined })
    return signal == null ? await this.running : await raceSignal(this.running, signal)
  }

  judge (source: SourceAddress, from: SourceOrigin): SourceAddress | undefined {
    const h = this.usable()
    if (h != null) {
      const url = h.nodes.get(source.id)
      if (url == null) return undefined
      // The address the pool signed, not the one a provider record (which any DHT server can answer) gave.
      return /^https?:\/\//.test(url) ? { id: source.id, url } : source
    }
    if (this.routeMissing && from === 'manager') {
      if (!this.warnedMissing) {
        this.warnedMissing = true
        this.c.logger.warn('the manager serves no signed node list (GET /api/pool/nodes): trusting the holders it names, ignoring every DHT provider record')
      }
      return source
    }
    return undefined
  }

  async refreshForUnknown (signal: AbortSignal): Promise<boolean> {
    const now = performance.now()
    if (now - this.lastUnknownRefresh < this.o.unknownGapMs) return false
    this.lastUnknownRefresh = now
    const wait = new AbortController()
    try {
      return await Promise.race([
        this.refresh(signal).catch(() => false),
        sleep(this.o.unknownWaitMs, false, { signal: AbortSignal.any([signal, wait.signal]) }).catch(() => false)
      ])
    } finally {
      wait.abort()
    }
  }

  ignored (source: SourceAddress, from: SourceOrigin): void {
    this.c.onIgnored?.(from)
    this.c.logger.debug({ peer: source.id, from }, 'source not on the pool\'s node list; ignored')
  }

  /** The list in hand, if it was signed by an identity trusted now. */
  private usable (): Held | undefined {
    const h = this.held
    const trusted = this.c.trusted()
    return h != null && trusted?.includes(h.body.iss) === true ? h : undefined
  }

  private async fetchOnce (): Promise<boolean> {
    try {
      const encoded = await this.c.manager.poolNodes({ signal: this.stopping.signal, timeoutMs: this.o.timeoutMs })
      const adopted = await this.adopt(encoded, true)
      this.routeMissing = false
      this.failing = false
      return adopted
    } catch (err) {
      this.failing = true
      if (err instanceof NotFoundError) this.routeMissing = true
      throw err
    }
  }

  /** Verifies a list and takes it if it is newer than the one in hand (or signed by another trusted identity); saves what it takes. */
  private async adopt (encoded: string, fresh: boolean): Promise<boolean> {
    const trusted = this.c.trusted()
    if (trusted == null) throw new UnavailableError('the manager\'s identity is not known yet: no node list can be checked')
    // A list from the manager now must be unexpired; a kept one is judged on its signature alone (as of time 0, nothing has expired).
    const { body } = await verifyRecord<NodeListBody>(encoded, { kind: 'node-list', trusted, now: fresh ? this.now() : 0 })
    if (!Number.isFinite(body.seq) || !Array.isArray(body.nodes)) throw new UnavailableError('node list lacks seq or nodes')
    const h = this.usable()
    if (h != null && h.body.iss === body.iss && body.seq <= h.body.seq) return false
    const nodes = new Map<string, string>()
    for (const n of body.nodes) if (typeof n?.peerId === 'string') nodes.set(n.peerId, typeof n.http === 'string' ? n.http : '')
    this.held = { body, encoded, nodes }
    this.c.logger.info({ seq: body.seq, nodes: nodes.size, expires: new Date(body.exp).toISOString() }, fresh ? 'pool node list updated' : 'using the kept pool node list until the manager answers')
    if (fresh) await this.save(encoded)
    return true
  }

  private async save (encoded: string): Promise<void> {
    if (this.file == null) return
    try {
      const state: StateFile = { v: 1, list: encoded }
      await mkdir(dirname(this.file), { recursive: true })
      await replaceFile(this.file, Buffer.from(JSON.stringify(state) + '\n'))
    } catch (err) {
      this.c.logger.warn({ file: this.file, err: describeError(err) }, 'could not keep the node list')
    }
  }

  private async run (): Promise<void> {
    await this.c.ready?.()
    await retryLoop(async () => await this.refresh(), {
      firstWaitMs: 0,
      periodMs: this.o.refreshMs,
      retryMs: this.o.retryMs,
      signal: this.stopping.signal,
      onFailure: (err, failures) => {
        if (failures === 0) this.c.logger.warn({ err: describeError(err) }, this.held == null ? 'could not fetch the pool node list; retrying' : 'could not refresh the pool node list; keeping the one in hand')
      }
    })
  }
}
