/**
 * The proxy's HTTP front and its routes:
 * - `GET|HEAD /c/<id>[/<name>][?k=<key>|?cap=<capability>]`: a content (content-route.ts);
 * - `GET|HEAD /n/<name>`: a name's newest generation, served the same way (name-route.ts);
 * - the same for `http://<id>.<suffix>/…` and `http://n.<suffix>/<name>` when
 *   the browser uses us as its HTTP proxy (only that suffix: this is not an
 *   open proxy);
 * - `/proxy.pac`: routes exactly that suffix through us;
 * - `/` dashboard, `/play/<id>` player, `/api/dashboard[/events]` its data
 *   (JSON, and server-sent events for live updates), `/assets/…` the chart
 *   library they draw with;
 * - `/metrics`, `/health`.
 * Only requests addressed to the proxy's own names, or to `<id>.<suffix>`,
 * are answered, and the dashboard's data only to its own origin
 * (request-guard.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import { decodeKey } from '../../core/chunk-crypto.ts'
import { BadInputError, CdnError, MethodNotAllowedError, NotFoundError } from '../../core/errors.ts'
import { sendError, sendJson } from '../../core/http-reply.ts'
import { parseContentId } from '../../core/ids.ts'
import type { Logger } from '../../core/log.ts'
import { serveMetrics } from '../../core/metrics.ts'
import { parseCapability } from '../capability.ts'
import { serveContent, type Access } from './content-route.ts'
import { NAME_HOST_LABEL, NAME_PATH, nameFromPath, serveName } from './name-route.ts'
import type { NameResolver } from '../resolve/name-records.ts'
import { chartAssets, pageHeaders, sendAsset } from '../../core/web-assets.ts'
import { dashboardPage, playerPage, type PlayerInfo } from './dashboard-page.ts'
import { dashboardSnapshot } from './dashboard-snapshot.ts'
import type { DownloadTracker } from './download-tracker.ts'
import type { FetchEngine } from '../fetch/fetch-engine.ts'
import type { GatewayMetrics } from '../metrics.ts'
import { pacFile } from './pac-file.ts'
import { addressedTo, foreignHostError, pacAddress, refuseCrossOrigin, type HostRules } from './request-guard.ts'
import { sendHealth, sendPac } from './responses.ts'

export interface GatewayComponents {
  engine: FetchEngine
  tracker: DownloadTracker
  registry: Registry
  metrics?: GatewayMetrics
  /** `/n/<name>` (name-route.ts); absent: ids only */
  names?: NameResolver
  logger: Logger
}

export interface GatewayInit {
  /** host suffix served as content ids when we are the browser's HTTP proxy (default `cdn`) */
  suffix?: string
  /** the address the proxy listens on (`--listen`): a name it answers to, and where the PAC file points */
  listenHost: string
  /** the port it listens on, once it does */
  listenPort: () => number
  /** `host:port` it announces (`--announce`): also its own name, and where the PAC file points instead */
  announced?: string
  /** ms between dashboard updates (default 1000) */
  dashboardIntervalMs?: number
}

type Route = 'content' | 'name' | 'host-content' | 'host-name' | 'pac' | 'dashboard' | 'player' | 'dashboard-data' | 'dashboard-events' | 'asset' | 'metrics' | 'health' | 'other'

const CONTENT_PATH = /^\/c\/([^/]+)(?:\/[^/]*)?$/
const PLAYER_PATH = /^\/play\/([^/]+)$/
const ASSET_PATH = /^\/assets\/([^/]+)$/

function routeOf (pathname: string): Route {
  if (CONTENT_PATH.test(pathname)) return 'content'
  if (NAME_PATH.test(pathname)) return 'name'
  if (PLAYER_PATH.test(pathname)) return 'player'
  if (ASSET_PATH.test(pathname)) return 'asset'
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

/** `?k=` (a key link) and `?cap=` (a capability), checked before anything is asked of anyone. */
function accessOf (url: URL): Access {
  const k = url.searchParams.get('k')
  const cap = url.searchParams.get('cap')
  return { key: k == null ? undefined : decodeKey(k), capability: cap == null ? undefined : parseCapability(cap) }
}

export function createGateway (components: GatewayComponents, init: GatewayInit): (req: IncomingMessage, res: ServerResponse) => void {
  const { engine, tracker, registry, metrics, logger } = components
  const rules: HostRules = { listenHost: init.listenHost, announced: init.announced, suffix: (init.suffix ?? 'cdn').toLowerCase() }
  const interval = init.dashboardIntervalMs ?? 1000

  const snapshot = (): ReturnType<typeof dashboardSnapshot> => dashboardSnapshot(engine, tracker)
  const assets = chartAssets()

  const sendPage = (req: IncomingMessage, res: ServerResponse, html: string): void => {
    res.writeHead(200, pageHeaders(html))
    res.end(req.method === 'HEAD' ? undefined : html)
  }

  /** Name, size and type for the player, when the content resolves; the video's own request reports any failure in full. */
  const playerInfo = async (id: string, access: Access): Promise<PlayerInfo> => {
    try {
      const stat = await engine.stat(id, { ...access, signal: AbortSignal.timeout(5000) })
      return { name: stat.metadata.name, size: stat.size, type: stat.metadata.type }
    } catch (err) {
      logger.debug({ err: (err as Error).message, id }, 'player page: content not resolved')
      return { problem: err instanceof CdnError ? err.message : 'could not be resolved' }
    }
  }

  function streamDashboard (req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    const push = (): void => { res.write(`data: ${JSON.stringify(snapshot())}\n\n`) }
    push()
    const timer = setInterval(push, interval)
    req.once('close', () => { clearInterval(timer) })
  }

  async function handle (req: IncomingMessage, res: ServerResponse, url: URL, route: Route, hostLabel: string | undefined): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      throw new MethodNotAllowedError(`${String(req.method)} is not allowed here`)
    }
    switch (route) {
      case 'host-content': return await serveContent(components, req, res, parseId(hostLabel ?? ''), accessOf(url))
      case 'content': return await serveContent(components, req, res, parseId(CONTENT_PATH.exec(url.pathname)![1]), accessOf(url))
      case 'name': return await serveName(components, req, res, nameFromPath(url.pathname), accessOf(url))
      case 'host-name': return await serveName(components, req, res, nameFromPath(url.pathname, true), accessOf(url))
      case 'player': {
        const id = parseId(PLAYER_PATH.exec(url.pathname)![1])
        // Checked before it goes into the page, whose media URL carries the same access the page was opened with.
        const access = accessOf(url)
        const info = await playerInfo(id, access)
        sendPage(req, res, playerPage(id, { k: url.searchParams.get('k') ?? undefined, cap: url.searchParams.get('cap') ?? undefined }, info, snapshot()))
        return
      }
      case 'dashboard': sendPage(req, res, dashboardPage(snapshot())); return
      case 'asset':
        if (!sendAsset(res, assets, ASSET_PATH.exec(url.pathname)![1], req.method === 'HEAD')) throw new NotFoundError(`no asset ${url.pathname}`)
        return
      case 'dashboard-data':
        refuseCrossOrigin(req)
        sendJson(res, 200, snapshot())
        return
      case 'dashboard-events':
        refuseCrossOrigin(req)
        streamDashboard(req, res)
        return
      case 'pac': sendPac(res, pacFile(rules.suffix, init.announced ?? pacAddress(rules.listenHost, init.listenPort()))); return
      case 'metrics': await serveMetrics(registry, req, res); return
      case 'health': sendHealth(res); return
      default: throw new NotFoundError(`nothing at ${url.pathname}; contents are served at /c/<id>`)
    }
  }

  return (req, res) => {
    let url: URL
    try {
      // Only the path and query matter here; the base stands in for the Host header, judged apart.
      url = new URL(req.url ?? '/', 'http://proxy.invalid')
    } catch (err) {
      sendError(res, new BadInputError('malformed request target', { cause: err }))
      return
    }
    const to = addressedTo(req, rules)
    if (to.kind === 'foreign') {
      // A page under another name (DNS rebinding), or someone using us as a general-purpose proxy.
      res.once('close', () => { metrics?.requests.inc({ route: 'foreign-host', status: String(res.statusCode) }) })
      sendError(res, foreignHostError(to, rules))
      return
    }
    const route: Route = to.kind === 'content' ? (to.label === NAME_HOST_LABEL ? 'host-name' : 'host-content') : routeOf(url.pathname)
    res.once('close', () => { metrics?.requests.inc({ route, status: String(res.statusCode) }) })
    // Paths only in logs, never a query: it may carry a key or a capability.
    handle(req, res, url, route, to.kind === 'content' ? to.label : undefined).catch((err: unknown) => {
      if (!(err instanceof CdnError)) logger.error({ err, path: url.pathname }, 'request failed')
      else if (err.status >= 500) logger.warn({ err: err.message, code: err.code, path: url.pathname }, 'content could not be served')
      else logger.debug({ err: err.message, code: err.code, path: url.pathname }, 'request refused')
      sendError(res, err)
    })
  }
}
