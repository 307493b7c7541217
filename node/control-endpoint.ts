/**
 * Answers the control protocol: orders from the configured manager are
 * validated and executed; any other peer (noise has authenticated its id) is
 * refused with ERR_FORBIDDEN before its request is even looked at.
 */
import type { AbortOptions, Libp2p, PeerId } from '@libp2p/interface'
import { serveRpc } from '../core/control-rpc.ts'
import { CdnError, describeError, ForbiddenError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import { CONTROL_PROTOCOL, parseOrder, type Deleted, type ManagerToNode, type Stored } from '../core/wire.ts'
import type { NodeMetrics } from './node-metrics.ts'

export interface ControlEndpointComponents {
  executor: { execute: (order: ManagerToNode, signal: AbortSignal) => Promise<Stored | Deleted> }
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

  /** The request handler itself, usable without a libp2p host. */
  async handle (request: unknown, remotePeer: PeerId | string, options: AbortOptions = {}): Promise<Stored | Deleted> {
    const from = remotePeer.toString()
    if (from !== this.managerPeerId) {
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
    const signal = AbortSignal.any([this.shutdown.signal, ...(options.signal != null ? [options.signal] : [])])
    return await this.c.executor.execute(order, signal)
  }

  /** Registers the protocol handler on `host`. */
  async start (host: Libp2p): Promise<void> {
    if (this.host != null) return
    this.host = host
    await serveRpc(host, CONTROL_PROTOCOL, async (request, remotePeer, options) => await this.handle(request, remotePeer, options), {
      onError: (err, peer) => {
        if (err instanceof CdnError) this.log.debug({ peer: peer.toString(), err: describeError(err) }, 'control request refused')
        else this.log.error({ peer: peer.toString(), err: describeError(err) }, 'control request failed')
      }
    })
  }

  /** Unregisters the handler and cancels orders still running. Safe to call twice. */
  async stop (): Promise<void> {
    this.shutdown.abort(new Error('node stopping'))
    const host = this.host
    this.host = undefined
    if (host != null) await host.unhandle(CONTROL_PROTOCOL)
  }
}
