/**
 * The proxy's HTTP front and its routes:
 * - `GET|HEAD /c/<id>[/<name>][?k=<key>]`: a content (content-route.ts);
 * - the same for `http://<id>.<suffix>/…` when the browser uses us as its
 *   HTTP proxy (only that suffix: this is not an open proxy);
 * - `/proxy.pac`: routes exactly that suffix through us;
 * - `/` dashboard, `/play/<id>` player, `/api/dashboard[/events]` its data
 *   (JSON, and server-sent events for live updates);
 * - `/metrics`, `/health`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import { decodeKey } from '../core/chunk-crypto.ts'
import { BadInputError, CdnError, ForbiddenError, MethodNotAllowedError, NotFoundError } from '../core/errors.ts'
import { sendError, sendJson } from '../core/http-reply.ts'
import { parseContentId } from '../core/ids.ts'
import type { Logger } from '../core/log.ts'
import { serveMetrics } from '../core/metrics.ts'
import { serveContent } from './content-route.ts'
import { dashboardPage, playerPage } from './dashboard-page.ts'
import type { DownloadTracker } from './download-tracker.ts'
import type { FetchEngine } from './fetch-engine.ts'
import type { GatewayMetrics } from './metrics.ts'
import { pacFile } from './pac-file.ts'
import { sendHealth, sendHtml, sendPac } from './responses.ts'

export interface GatewayComponents {
  engine: FetchEngine
  tracker: DownloadTracker
  registry: Registry
  metrics?: GatewayMetrics
  logger: Logger
}

export interface GatewayInit {
  /** host suffix served as content ids when we are the browser's HTTP proxy (default `cdn`) */
  suffix?: string
  /** `host:port` the PAC file points browsers at when the request names no Host */
  proxyHostPort: () => string
  /** ms between dashboard updates (default 1000) */
  dashboardIntervalMs?: number
}

type Route = 'content' | 'host-content' | 'pac' | 'dashboard' | 'player' | 'dashboard-data' | 'dashboard-events' | 'metrics' | 'health' | 'other'

const CONTENT_PATH = /^\/c\/([^/]+)(?:\/[^/]*)?$/
const PLAYER_PATH = /^\/play\/([^/]+)$/

/** A request is for `<id>.<suffix>` when the browser sent it to us as its proxy (absolute URL) or named that host. */
function contentHost (req: IncomingMessage, suffix: string): string | undefined {
  const target = req.url ?? '/'
  let host: string | undefined
  if (/^https?:\/\//i.test(target)) {
    try {
      host = new URL(target).hostname
    } catch {
      return undefined
    }
  } else {
    host = req.headers.host?.replace(/:\d+$/, '')
  }
  host = host?.toLowerCase()
  const tail = `.${suffix}`
  if (host == null || !host.endsWith(tail) || host.length === tail.length) return undefined
  return host.slice(0, -tail.length)
}

function routeOf (pathname: string): Route {
  if (CONTENT_PATH.test(pathname)) return 'content'
  if (PLAYER_PATH.test(pathname)) return 'player'
  switch (pathname) {
    case '/': return 'dashboard'
    case '/proxy.pac': return 'pac'
    case '/api/dashboard': return 'dashboard-data'
    case '/api/dashboard/events': return 'dashboard-events'
    case '/metrics': return 'metrics'
    case '/health': return 'health'
    default: return 'other'
  }
}

function parseId (raw: string): string {
  let text: string
  try {
    text = decodeURIComponent(raw)
  } catch (err) {
    throw new BadInputError('malformed content id', { cause: err })
  }
  return parseContentId(text).toString()
}

export function createGateway (components: GatewayComponents, init: GatewayInit): (req: IncomingMessage, res: ServerResponse) => void {
  const { engine, tracker, registry, metrics, logger } = components
  const suffix = (init.suffix ?? 'cdn').toLowerCase()
  const interval = init.dashboardIntervalMs ?? 1000

  const snapshot = (): unknown => ({ downloads: tracker.snapshot(), ...engine.snapshot() })

  function streamDashboard (req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    const push = (): void => { res.write(`data: ${JSON.stringify(snapshot())}\n\n`) }
    push()
    const timer = setInterval(push, interval)
    req.once('close', () => { clearInterval(timer) })
  }

  async function handle (req: IncomingMessage, res: ServerResponse, url: URL, route: Route, hostId: string | undefined): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      throw new MethodNotAllowedError(`${String(req.method)} is not allowed here`)
    }
    const key = (): Uint8Array | undefined => {
      const k = url.searchParams.get('k')
      return k == null ? undefined : decodeKey(k)
    }
    switch (route) {
      case 'host-content': return await serveContent(components, req, res, parseId(hostId ?? ''), key())
      case 'content': return await serveContent(components, req, res, parseId(CONTENT_PATH.exec(url.pathname)![1]), key())
      case 'player': {
        const id = parseId(PLAYER_PATH.exec(url.pathname)![1])
        const k = url.searchParams.get('k')
        if (k != null) decodeKey(k)
        sendHtml(res, playerPage(id, k ?? undefined))
        return
      }
      case 'dashboard': sendHtml(res, dashboardPage()); return
      case 'dashboard-data': sendJson(res, 200, snapshot()); return
      case 'dashboard-events': streamDashboard(req, res); return
      // The address the browser reached us at is the one it can use as a proxy.
      case 'pac': sendPac(res, pacFile(suffix, req.headers.host ?? init.proxyHostPort())); return
      case 'metrics': await serveMetrics(registry, req, res); return
      case 'health': sendHealth(res); return
      default: throw new NotFoundError(`nothing at ${url.pathname}; contents are served at /c/<id>`)
    }
  }

  return (req, res) => {
    const target = req.url ?? '/'
    const hostId = contentHost(req, suffix)
    let url: URL
    try {
      // Only the path matters; the base stands in for the Host header nobody should trust.
      url = new URL(target, 'http://proxy.invalid')
    } catch (err) {
      sendError(res, new BadInputError('malformed request target', { cause: err }))
      return
    }
    if (hostId == null && /^https?:\/\//i.test(target)) {
      // Someone is using us as a general-purpose proxy: refuse, we serve only our own suffix.
      res.once('close', () => { metrics?.requests.inc({ route: 'foreign-host', status: String(res.statusCode) }) })
      sendError(res, new ForbiddenError(`this proxy serves only *.${suffix} hosts`))
      return
    }
    const route: Route = hostId != null ? 'host-content' : routeOf(url.pathname)
    res.once('close', () => { metrics?.requests.inc({ route, status: String(res.statusCode) }) })
    // Paths only in logs: the query may carry a capability's key.
    handle(req, res, url, route, hostId).catch((err: unknown) => {
      if (!(err instanceof CdnError)) logger.error({ err, path: url.pathname }, 'request failed')
      else if (err.status >= 500) logger.warn({ err: err.message, code: err.code, path: url.pathname }, 'content could not be served')
      else logger.debug({ err: err.message, code: err.code, path: url.pathname }, 'request refused')
      sendError(res, err)
    })
  }
}
