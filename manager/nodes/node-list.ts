/**
 * The signed list of the nodes a proxy may fetch from (`GET /api/pool/nodes`):
 * every registered node that was not removed (alive, draining or dead: a
 * node back from the dead should not need a new list to be used again),
 * signed by the pool identity, expiring after an hour, with a sequence that
 * only grows (drawn from the catalog, so it grows across managers) so a proxy
 * keeps the newest it saw.
 *
 * Signing is cheap but the route needs no token, so a list is reused while
 * the pool is unchanged and it is young; any change to the nodes signs anew.
 */
import type { PrivateKey } from '@libp2p/interface'
import { signRecord, type NodeListBody } from '../../core/signed-record.ts'
import type { Catalog } from '../catalog/catalog.ts'

export interface NodeListComponents {
  catalog: Pick<Catalog, 'listNodes'>
  /** the pool identity: its key and peer id */
  signer: { privateKey: PrivateKey, peerId: string }
  /** the next number of the pool's signing sequence (default: this manager's clock in ms, made to grow) */
  nextSeq?: () => Promise<number>
  /** ms since the epoch (default Date.now) */
  now?: () => number
}

export interface NodeListInit {
  /** ms a list is valid (default 1 h) */
  validityMs?: number
  /** ms an unchanged list is served again before a fresh one is signed (default 60 s) */
  reuseMs?: number
}

export class NodeListSigner {
  private readonly c: NodeListComponents
  private readonly now: () => number
  private readonly validityMs: number
  private readonly reuseMs: number
  private lastSeq = 0
  private cached?: { fingerprint: string, at: number, record: string }

  constructor (components: NodeListComponents, init: NodeListInit = {}) {
    this.c = components
    this.now = components.now ?? Date.now
    this.validityMs = init.validityMs ?? 3_600_000
    this.reuseMs = init.reuseMs ?? 60_000
  }

  /** The encoded, signed list (core/signed-record.ts, kind `node-list`). */
  async current (): Promise<string> {
    const nodes = (await this.c.catalog.listNodes()).map(n => ({ peerId: n.peerId, http: n.http }))
    const fingerprint = JSON.stringify(nodes)
    const now = this.now()
    const c = this.cached
    if (c != null && c.fingerprint === fingerprint && now - c.at < this.reuseMs) return c.record
    const seq = this.c.nextSeq != null ? await this.c.nextSeq() : this.localSeq(now)
    const body: NodeListBody = { kind: 'node-list', iss: this.c.signer.peerId, iat: now, exp: now + this.validityMs, seq, nodes }
    const record = await signRecord(body, this.c.signer.privateKey)
    this.cached = { fingerprint, at: now, record }
    return record
  }

  /** Two lists signed within one ms still get distinct, growing sequence numbers. */
  private localSeq (now: number): number {
    this.lastSeq = Math.max(now, this.lastSeq + 1)
    return this.lastSeq
  }
}
