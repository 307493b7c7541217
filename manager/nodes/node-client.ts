/**
 * Sends orders to nodes over the control protocol and checks their replies.
 * The pipeline and the delete path depend on the NodeClient interface only,
 * so they can be tested with in-memory nodes.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { rpcCall } from '../../core/control-rpc.ts'
import { BadInputError, CdnError, UpstreamError } from '../../core/errors.ts'
import { CONTROL_PROTOCOL, type DeleteOrder, type Deleted, type RemoveOrder, type StoreOrder, type Stored, type StoreResult } from '../../core/wire.ts'
import type { OrderKind, OrderOutcome } from '../metrics.ts'

export interface OrderOptions {
  signal?: AbortSignal
  /** ms before the order is abandoned */
  timeout?: number
}

export interface NodeClient {
  /** Sends a store order; resolves with one result per blob (some may be failures). */
  store: (peerId: string, order: StoreOrder, options?: OrderOptions) => Promise<Stored>
  delete: (peerId: string, order: DeleteOrder, options?: OrderOptions) => Promise<Deleted>
  /** Tells a node it was removed from the pool (it wipes and exits); resolves once it acknowledged. */
  remove?: (peerId: string, options?: OrderOptions) => Promise<void>
}

export interface RpcNodeClientComponents {
  libp2p: Libp2p
  /**
   * A node's libp2p addresses as the catalog knows them. With several
   * managers a node dials only the one it heartbeats to; the others reach it
   * through what that one recorded.
   */
  knownAddresses?: (peerId: string) => Promise<string[]>
  /** counts every order by kind and outcome */
  onOrder?: (kind: OrderKind, outcome: OrderOutcome) => void
}

export interface RpcNodeClientInit {
  /** ms, used when an order gives none (default 2 min: a store order moves up to a few dozen MiB) */
  timeout?: number
}

/** Replies list at most one result per blob of an order (a few thousand ids); larger is no reply of a node. */
const MAX_NODE_REPLY_BYTES = 2 * 1024 * 1024

const isObj = (v: unknown): v is Record<string, unknown> => v != null && typeof v === 'object' && !Array.isArray(v)

/** A node's `error` reply becomes a CdnError with the node's code; the status is 502 since, to our caller, the node is upstream. */
function refusal (peerId: string, reply: Record<string, unknown>): CdnError {
  const code = typeof reply.code === 'string' && /^ERR_[A-Z_]{1,40}$/.test(reply.code) ? reply.code : 'ERR_UPSTREAM'
  const message = typeof reply.message === 'string' ? reply.message.slice(0, 500) : 'no message'
  return new CdnError(`node ${peerId} refused the order: ${message}`, code, 502)
}

function parseStored (peerId: string, order: StoreOrder, reply: unknown): Stored {
  if (isObj(reply) && reply.type === 'error') throw refusal(peerId, reply)
  if (!isObj(reply) || reply.type !== 'stored' || !Array.isArray(reply.results)) {
    throw new UpstreamError(`node ${peerId} sent a malformed reply to a store order`)
  }
  const asked = new Set(order.blobs.map(b => b.cid))
  const results: StoreResult[] = []
  for (const r of reply.results) {
    // Results for blobs we did not ask for are ignored; blobs without a result count as failed.
    if (!isObj(r) || typeof r.cid !== 'string' || !asked.has(r.cid) || typeof r.ok !== 'boolean') continue
    results.push({ cid: r.cid, ok: r.ok, ...(typeof r.error === 'string' ? { error: r.error.slice(0, 500) } : {}) })
  }
  return { type: 'stored', results }
}

function parseRemoved (peerId: string, reply: unknown): void {
  if (isObj(reply) && reply.type === 'error') throw refusal(peerId, reply)
  if (!isObj(reply) || reply.type !== 'removed') throw new UpstreamError(`node ${peerId} sent a malformed reply to a remove order`)
}

function parseDeleted (peerId: string, reply: unknown): Deleted {
  if (isObj(reply) && reply.type === 'error') throw refusal(peerId, reply)
  if (!isObj(reply) || reply.type !== 'deleted' || !Array.isArray(reply.removed)) {
    throw new UpstreamError(`node ${peerId} sent a malformed reply to a delete order`)
  }
  return { type: 'deleted', removed: reply.removed.filter((c): c is string => typeof c === 'string') }
}

/**
 * Orders over libp2p. Nodes dial the manager to join, so their connection is
 * what the dial by peer id uses; without one (after a restart, or a node that
 * heartbeats to another manager) the catalog's addresses are put in the peer
 * store first.
 */
export class RpcNodeClient implements NodeClient {
  private readonly c: RpcNodeClientComponents
  private readonly timeout: number

  constructor (components: RpcNodeClientComponents, init: RpcNodeClientInit = {}) {
    this.c = components
    this.timeout = init.timeout ?? 120_000
  }

  async store (peerId: string, order: StoreOrder, options: OrderOptions = {}): Promise<Stored> {
    return this.send('store', peerId, order, options, reply => parseStored(peerId, order, reply), r => r.results.length === order.blobs.length && r.results.every(x => x.ok))
  }

  async delete (peerId: string, order: DeleteOrder, options: OrderOptions = {}): Promise<Deleted> {
    return this.send('delete', peerId, order, options, reply => parseDeleted(peerId, reply), () => true)
  }

  async remove (peerId: string, options: OrderOptions = {}): Promise<void> {
    const order: RemoveOrder = { type: 'remove' }
    await this.send('remove', peerId, order, options, reply => { parseRemoved(peerId, reply) }, () => true)
  }

  private async send<T> (kind: OrderKind, peerId: string, order: StoreOrder | DeleteOrder | RemoveOrder, options: OrderOptions, parse: (reply: unknown) => T, complete: (r: T) => boolean): Promise<T> {
    let peer
    try {
      peer = peerIdFromString(peerId)
    } catch (err) {
      throw new BadInputError(`invalid node peer id "${peerId}"`, { cause: err })
    }
    let outcome: OrderOutcome = 'failed'
    try {
      await this.learnAddresses(peer)
      const reply = await rpcCall(this.c.libp2p, peer, CONTROL_PROTOCOL, order, { signal: options.signal, timeout: options.timeout ?? this.timeout, maxReplyBytes: MAX_NODE_REPLY_BYTES })
      if (isObj(reply) && reply.type === 'error') outcome = 'refused'
      const parsed = parse(reply)
      outcome = complete(parsed) ? 'ok' : 'partial'
      return parsed
    } catch (err) {
      if (err instanceof CdnError) throw err
      throw new UpstreamError(`${kind} order to node ${peerId} failed`, { cause: err })
    } finally {
      this.c.onOrder?.(kind, outcome)
    }
  }

  private async learnAddresses (peer: PeerId): Promise<void> {
    if (this.c.knownAddresses == null || this.c.libp2p.getConnections(peer).length > 0) return
    const addrs = await this.c.knownAddresses(peer.toString())
    if (addrs.length > 0) await this.c.libp2p.peerStore.merge(peer, { multiaddrs: addrs.map(a => multiaddr(a)) })
  }
}
