import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '../core/log.ts'
import { createMetricsRegistry } from '../core/metrics.ts'
import { startFetchStack, type FetchStack } from './fetch-stack.ts'
import { createGateway } from './gateway.ts'
import { createProxyMetrics } from './metrics.ts'

export interface ProxyConfig {
  managerUrl: string
  /** default '127.0.0.1' (loopback only unless told otherwise) */
  httpHost?: string
  /** default 8080; 0 = ephemeral */
  httpPort?: number
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
  const host = config.httpHost ?? '127.0.0.1'
  const registry = createMetricsRegistry('proxy')
  const metrics = createProxyMetrics(registry)
  const stack: FetchStack = await startFetchStack({ managerUrl: config.managerUrl, logger, metrics, requireManager: false })
  let server: Server
  try {
    server = createServer(createGateway({ engine: stack.engine, registry, metrics, logger: logger.child({ module: 'gateway' }) }))
    server.listen(config.httpPort ?? 8080, host)
    await once(server, 'listening')
  } catch (err) {
    await stack.close()
    throw err
  }
  const port = (server.address() as AddressInfo).port
  const http = `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  logger.info({ http, manager: config.managerUrl }, 'proxy listening')

  let stopping: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopping ??= (async () => {
      const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
      // Streams to browsers would keep close() waiting forever; cutting them also cancels their reads.
      server.closeAllConnections()
      await closed
      await stack.close()
      logger.info({ http }, 'proxy stopped')
    })()
    return stopping
  }
  return { http, stop }
}
