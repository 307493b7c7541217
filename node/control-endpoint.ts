/**
 * Answers the control protocol: orders from the pool's managers (the
 * configured one, and every one on the manager list the pool signed) are
 * validated and executed; any other peer (noise has authenticated its id) is
 * refused with ERR_FORBIDDEN before a byte of its request is read.
 */
import type { Libp2p, PeerId } from '@libp2p/interface'
import { serveRpc, type HandlerContext } from '../core/control-rpc.ts'
import { CdnError, describeError, ForbiddenError, UnavailableError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import { CONTROL_PROTOCOL, parseOrder, type Deleted, type DeleteOrder, type ManagerToNode, type Removed, type StoreOrder, type Stored } from '../core/wire.ts'
import type { NodeMetrics } from './node-metrics.ts'

/** Orders are at most a few thousand blob ids with their sources; a frame above this is no order of ours. */
export const MAX_ORDER_BYTES = 4 * 1024 * 1024
/** ms the manager has to send a whole order frame */
const ORDER_READ_MS = 10_000

export interface ControlEndpointComponents {
  executor: { execute: (order: StoreOrder | DeleteOrder, signal: AbortSignal) => Promise<Stored | Deleted> }
  /** the manager removed this node from the pool; called once the reply is on its way */
  onRemoved?: () => void
  metrics?: Pick<NodeMetrics, 'orders'>
  /** the other managers whose orders are obeyed (node/pool-managers.ts); default none */
  managers?: { allows: (peer: string) => boolean }
  logger: Logger
}

export interface ControlEndpointInit {
  /** the configured manager, whose orders are always obeyed */
  managerPeerId: string
}

export class ControlEndpoint {
  private readonly c: ControlEndpointComponents
  private readonly log: Logger
  private readonly managerPeerId: string
  private host?: Libp2p
  private readonly shutdown = new AbortController()

  constructor (components: ControlEndpointComponents, init: ControlEndpointInit) {
    this.c = components
    this.log = components.logger
    this.managerPeerId = init.managerPeerId
  }

  /** Whether orders from this peer are obeyed: the configured manager's and the listed managers'. */
  allows (remotePeer: PeerId | string): boolean {
    const peer = remotePeer.toString()
    return peer === this.managerPeerId || this.c.managers?.allows(peer) === true
  }

  /** The request handler itself, usable without a libp2p host. */
  async handle (request: unknown, remotePeer: PeerId | string, context: Partial<HandlerContext> = {}): Promise<Stored | Deleted | Removed> {
    const from = remotePeer.toString()
    if (!this.allows(from)) {
      this.c.metrics?.orders.inc({ kind: 'unknown', outcome: 'forbidden' })
      this.log.warn({ peer: from }, 'refused an order from a peer that is not one of our managers')
      throw new ForbiddenError(`peer ${from} is not one of this node's managers`)
    }
    let order: ManagerToNode
    try {
      order = parseOrder(request)
    } catch (err) {
      this.c.metrics?.orders.inc({ kind: 'unknown', outcome: 'invalid' })
      throw err
    }
    if (order.type === 'remove') return this.removed(context)
    const signal = AbortSignal.any([this.shutdown.signal, ...(context.signal != null ? [context.signal] : [])])
    return await this.c.executor.execute(order, signal)
  }

  private removed (context: Partial<HandlerContext>): Removed {
    this.c.metrics?.orders.inc({ kind: 'remove', outcome: 'ok' })
    this.log.warn('the manager removed this node from the pool')
    const onRemoved = this.c.onRemoved
    // Leaving stops the host that carries the reply: it happens once the reply is out.
    if (onRemoved != null) {
      if (context.afterReply != null) context.afterReply(onRemoved)
      else queueMicrotask(onRemoved)
    }
    return { type: 'removed' }
  }

  /** Registers the protocol handler on `host`. */
  async start (host: Libp2p): Promise<void> {
    if (this.host != null) return
    this.host = host
    await serveRpc(host, CONTROL_PROTOCOL, async (request, remotePeer, context) => await this.handle(request, remotePeer, context), {
      allow: (peer) => {
        if (this.allows(peer)) return true
        this.c.metrics?.orders.inc({ kind: 'unknown', outcome: 'forbidden' })
        this.log.warn({ peer: peer.toString() }, 'refused an order from a peer that is not one of our managers')
        return false
      },
      maxRequestBytes: MAX_ORDER_BYTES,
      requestReadMs: ORDER_READ_MS,
      onError: (err, peer) => {
        if (err instanceof CdnError) this.log.debug({ peer: peer.toString(), err: describeError(err) }, 'control request refused')
        else this.log.error({ peer: peer.toString(), err: describeError(err) }, 'control request failed')
      }
    })
  }

  /** Unregisters the handler and cancels orders still running. Safe to call twice. */
  async stop (): Promise<void> {
    this.shutdown.abort(new UnavailableError('node stopping'))
    const host = this.host
    this.host = undefined
    if (host != null) await host.unhandle(CONTROL_PROTOCOL)
  }
}
