/**
 * Limits that keep an HTTP server from being held open by a slow or hostile
 * client: a deadline for the headers, for the whole request body, for an idle
 * socket, and a cap on connections per client address. Every daemon applies
 * them to each server it opens, so none can be exhausted by slowloris.
 */
import type { Server } from 'node:http'
import type { Socket } from 'node:net'

export interface HttpLimits {
  /** ms to receive the request headers (default 10 s) */
  headersTimeout?: number
  /**
   * ms to receive a whole request (default 60 s); 0 for none, for servers
   * that take long uploads and cut stalled bodies with `idleTimeout` instead
   */
  requestTimeout?: number
  /** ms a socket may stay silent, in either direction, before it is cut (default 30 s) */
  idleTimeout?: number
  /** ms an idle keep-alive connection is kept between requests (default 5 s) */
  keepAliveTimeout?: number
  /** open connections one client address may hold (default 64) */
  maxConnectionsPerClient?: number
  /** open connections in all (default 4096) */
  maxConnections?: number
}

export const HTTP_LIMIT_DEFAULTS: Required<HttpLimits> = {
  headersTimeout: 10_000,
  requestTimeout: 60_000,
  idleTimeout: 30_000,
  keepAliveTimeout: 5_000,
  maxConnectionsPerClient: 64,
  maxConnections: 4096
}

/** Applies `limits` to `server`; call before `listen`. Returns the per-client counts, for metrics and tests. */
export function guardServer (server: Server, limits: HttpLimits = {}): Map<string, number> {
  const l = { ...HTTP_LIMIT_DEFAULTS, ...stripUndefined(limits) }
  // Node checks headersTimeout and requestTimeout on this interval; keep it below the smallest of them.
  server.headersTimeout = l.headersTimeout
  server.requestTimeout = l.requestTimeout
  server.keepAliveTimeout = l.keepAliveTimeout
  server.maxConnections = l.maxConnections
  // An idle socket (no bytes either way) is destroyed: a stalled body or a reader that stopped reading.
  server.setTimeout(l.idleTimeout, (socket: Socket) => { socket.destroy() })
  const perClient = new Map<string, number>()
  server.on('connection', (socket: Socket) => {
    const who = socket.remoteAddress ?? 'unknown'
    const n = (perClient.get(who) ?? 0) + 1
    if (n > l.maxConnectionsPerClient) {
      socket.destroy()
      return
    }
    perClient.set(who, n)
    socket.once('close', () => {
      const left = (perClient.get(who) ?? 1) - 1
      if (left <= 0) perClient.delete(who)
      else perClient.set(who, left)
    })
  })
  return perClient
}

function stripUndefined (o: HttpLimits): HttpLimits {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined))
}
