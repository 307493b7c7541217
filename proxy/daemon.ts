import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { defaultAnnounceHost, parseAnnounceUrl, urlHost } from '../core/addresses.ts'
import { deferClose } from '../core/closing.ts'
import { guardServer, type HttpLimits } from '../core/http-guard.ts'
import type { Logger } from '../core/log.ts'
import { isAddressInUse, PortInUseError } from '../core/ports.ts'
import { createMetricsRegistry } from '../core/metrics.ts'
import { loggableUrl } from './capability.ts'
import { startFetchStack, type FetchStack } from './fetch-stack.ts'
import { DownloadTracker } from './http/download-tracker.ts'
import { createGateway } from './http/gateway.ts'
import { createProxyMetrics } from './metrics.ts'
import { PROXY_DEFAULTS, PROXY_HTTP_LIMITS } from './defaults.ts'

export { PROXY_HTTP_LIMITS }

export interface ProxyConfig {
  /** the manager's API URL, or the URLs of several managers of one pool, tried in this order */
  managerUrl: string | readonly string[]
  /** PEM of a private CA for an https manager */
  ca?: Buffer
  /** default PROXY_DEFAULTS.httpHost (loopback only unless told otherwise) */
  httpHost?: string
  /** default PROXY_DEFAULTS.httpPort; 0 = ephemeral */
  httpPort?: number
  /**
   * `http://host:port` browsers are told to use (printed, and in the PAC
   * file); default the listen address, or this host's first external
   * interface address when listening on a wildcard
   */
  announce?: string
  /** verified ciphertext chunks are cached here (default: no disk cache) */
  cacheDir?: string
  /** bytes the chunk cache may use (default PROXY_DEFAULTS.cacheBytes) */
  cacheBytes?: number
  /** where the proxy remembers its manager and the nodes it met, to keep working while the manager is down */
  stateDir?: string
  /** host suffix served when browsers use the proxy as their HTTP proxy (default PROXY_DEFAULTS.suffix) */
  suffix?: string
  /** the HTTP server's limits, over PROXY_HTTP_LIMITS (tests shorten them) */
  httpLimits?: HttpLimits
  logger: Logger
}

export interface ProxyDaemon {
  /** base URL of the gateway, e.g. http://127.0.0.1:8080 */
  http: string
  stop (): Promise<void>
}

/**
 * The proxy's one wiring place: metrics, the fetch stack (DHT client host,
 * manager link, fetcher, resolver, engine) and the HTTP gateway, closed in
 * reverse order. It comes up even while the manager is unreachable, so
 * capability links keep working and the manager is picked up when it appears.
 */
export async function startProxy (config: ProxyConfig): Promise<ProxyDaemon> {
  const logger = config.logger
  const host = config.httpHost ?? PROXY_DEFAULTS.httpHost
  const announced = config.announce != null ? parseAnnounceUrl(config.announce) : undefined
  const registry = createMetricsRegistry('proxy')
  const metrics = createProxyMetrics(registry)
  // What was opened so far, closed in reverse on stop or on a failed start.
  const closers = new AsyncDisposableStack()
  const closeOnStop = (part: string, close: () => Promise<void> | void): void => { deferClose(closers, part, close, logger) }
  const stack: FetchStack = await startFetchStack({
    managerUrl: config.managerUrl,
    ca: config.ca,
    logger,
    metrics,
    requireManager: false,
    stateDir: config.stateDir,
    cache: config.cacheDir == null || config.cacheBytes === 0 ? undefined : { dir: config.cacheDir, maxBytes: config.cacheBytes ?? PROXY_DEFAULTS.cacheBytes }
  })
  closeOnStop('fetch stack', async () => { await stack.close() })
  const tracker = new DownloadTracker()
  let server: Server
  let port = 0
  try {
    const gateway = createGateway({ engine: stack.engine, tracker, registry, metrics, names: stack.names, logger: logger.child({ part: 'gateway' }) }, {
      suffix: config.suffix ?? PROXY_DEFAULTS.suffix,
      listenHost: host,
      listenPort: () => port,
      announced: announced?.host
    })
    // Node checks the header and request deadlines on this interval (default 30 s): keep it well below them.
    server = createServer({ connectionsCheckingInterval: 1000 }, gateway)
    guardServer(server, { ...PROXY_HTTP_LIMITS, ...config.httpLimits })
    server.listen(config.httpPort ?? PROXY_DEFAULTS.httpPort, host)
    await once(server, 'listening')
    const listening = server
    closeOnStop('http', async () => {
      const closed = new Promise<void>((resolve) => { listening.close(() => { resolve() }) })
      // Streams to browsers would keep close() waiting forever; cutting them also cancels their reads.
      listening.closeAllConnections()
      await closed
    })
  } catch (err) {
    await closers.disposeAsync()
    if (isAddressInUse(err)) throw new PortInUseError('http', host, config.httpPort ?? PROXY_DEFAULTS.httpPort, { cause: err })
    throw err
  }
  port = (server.address() as AddressInfo).port
  const hostPort = announced != null ? announced.host : `${urlHost(defaultAnnounceHost(host))}:${port}`
  const http = `http://${hostPort}`
  const managers = (typeof config.managerUrl === 'string' ? [config.managerUrl] : config.managerUrl).map(loggableUrl)
  logger.info({ http, ...(managers.length === 1 ? { manager: managers[0] } : { managers }) }, 'proxy listening')

  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      await closers.disposeAsync()
      logger.info({ http }, 'proxy stopped')
    })()
    return stopping
  }
  return { http, stop }
}
