/**
 * Answers the control protocol: orders from the configured manager are
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
  logger: Logger
}

export interface ControlEndpointInit {
  /** the only peer whose orders are obeyed */
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

  /** Whether orders from this peer are obeyed (only the configured manager's). */
  allows (remotePeer: PeerId | string): boolean {
    return remotePeer.toString() === this.managerPeerId
  }

  /** The request handler itself, usable without a libp2p host. */
  async handle (request: unknown, remotePeer: PeerId | string, context: Partial<HandlerContext> = {}): Promise<Stored | Deleted | Removed> {
    const from = remotePeer.toString()
    if (!this.allows(from)) {
      this.c.metrics?.orders.inc({ kind: 'unknown', outcome: 'forbidden' })
      this.log.warn({ peer: from }, 'refused an order from a peer that is not our manager')
      throw new ForbiddenError(`peer ${from} is not this node's manager`)
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
        this.log.warn({ peer: peer.toString() }, 'refused an order from a peer that is not our manager')
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
