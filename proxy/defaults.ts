/**
 * The proxy daemon's defaults, stated once: `startProxy` applies them and the
 * CLI's help shows them, so the two cannot drift apart.
 */
import type { HttpLimits } from '../core/http-guard.ts'

export const PROXY_DEFAULTS = {
  /** loopback only unless told otherwise: the gateway serves this machine's browsers */
  httpHost: '127.0.0.1',
  httpPort: 8080,
  /** bytes the chunk cache may use when a cache directory is given */
  cacheBytes: 2e9,
  /** host suffix served when browsers use the proxy as their HTTP proxy */
  suffix: 'cdn'
} as const

/**
 * Limits for a server whose clients are the browsers and players of this
 * machine: they all come from one address and open many connections (tabs,
 * media requests, the dashboard's event stream), and a video's response lasts
 * as long as the video. Node's idle timeout counts bytes in both directions,
 * so a response that streams is never idle; the generous idle limit covers a
 * player that paused reading and a read waiting out a node's failure.
 */
export const PROXY_HTTP_LIMITS: HttpLimits = {
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  idleTimeout: 120_000,
  keepAliveTimeout: 5_000,
  maxConnectionsPerClient: 256,
  maxConnections: 1024
}
