import { once } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import { decodeKey } from '../core/chunk-crypto.ts'
import { BadInputError, CdnError, MethodNotAllowedError, NotFoundError } from '../core/errors.ts'
import { sendError } from '../core/http-reply.ts'
import { parseContentId } from '../core/ids.ts'
import type { Logger } from '../core/log.ts'
import { serveMetrics } from '../core/metrics.ts'
import type { FetchEngine } from './fetch-engine.ts'
import type { GatewayMetrics } from './metrics.ts'
import { isNotModified, sendContentHead, sendHealth, sendNotModified } from './responses.ts'

export interface GatewayComponents {
  engine: FetchEngine
  registry: Registry
  metrics?: GatewayMetrics
  logger: Logger
}

type Route = 'content' | 'metrics' | 'health' | 'other'

/** Thrown into a read when the browser went away, so the read stops instead of fetching for nobody. */
class ClientGoneError extends Error {
  constructor () {
    super('client closed the connection')
    this.name = 'ClientGoneError'
  }
}

/**
 * The proxy's HTTP front: `GET|HEAD /c/<id>` (optionally `/c/<id>/<name>`,
 * and `?k=<key>` for a capability) streams a content, `/metrics` and
 * `/health` describe the proxy.
 */
export function createGateway (components: GatewayComponents): (req: IncomingMessage, res: ServerResponse) => void {
  const { engine, registry, metrics, logger } = components

  async function serveContent (req: IncomingMessage, res: ServerResponse, rawId: string, url: URL): Promise<void> {
    let id: string
    try {
      id = parseContentId(decodeURIComponent(rawId)).toString()
    } catch (err) {
      if (err instanceof CdnError) throw err
      throw new BadInputError(`invalid content id in ${url.pathname}`, { cause: err })
    }
    const k = url.searchParams.get('k')
    const key = k == null ? undefined : decodeKey(k)
    if (isNotModified(req, id)) {
      sendNotModified(res, id)
      return
    }
    const ac = new AbortController()
    const onClose = (): void => { if (!res.writableFinished) ac.abort(new ClientGoneError()) }
    res.on('close', onClose)
    let body: AsyncIterator<Uint8Array> | undefined
    try {
      const opened = await engine.open(id, { key, signal: ac.signal })
      body = opened.body
      if (req.method === 'HEAD') {
        sendContentHead(res, opened)
        res.end()
        return
      }
      // Wait for the first chunk before committing to 200: when no source can
      // serve, the browser gets a 502 with the reason, not a truncated body.
      let piece = await body.next()
      sendContentHead(res, opened)
      while (piece.done !== true) {
        metrics?.bytesServed.inc(piece.value.length)
        if (!res.write(piece.value)) await once(res, 'drain', { signal: ac.signal })
        piece = await body.next()
      }
      res.end()
    } catch (err) {
      if (ac.signal.aborted) {
        logger.debug({ id }, 'client went away; read cancelled')
        return
      }
      if (res.headersSent) {
        // Too late for a status: cutting the connection is how HTTP says the body is incomplete.
        logger.warn({ err, id }, 'content stream failed midway')
        res.destroy(err instanceof Error ? err : undefined)
        return
      }
      throw err
    } finally {
      res.off('close', onClose)
      await body?.return?.()
    }
  }

  async function handle (req: IncomingMessage, res: ServerResponse, url: URL, route: Route): Promise<void> {
    if (route === 'other') throw new NotFoundError(`nothing at ${url.pathname}; contents are served at /c/<id>`)
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      throw new MethodNotAllowedError(`${String(req.method)} is not allowed here`)
    }
    if (route === 'metrics') await serveMetrics(registry, req, res)
    else if (route === 'health') sendHealth(res)
    else await serveContent(req, res, CONTENT_PATH.exec(url.pathname)?.[1] ?? '', url)
  }

  return (req, res) => {
    let url: URL
    try {
      // Only the path matters; the base stands in for the Host header nobody should trust.
      url = new URL(req.url ?? '/', 'http://proxy.invalid')
    } catch (err) {
      sendError(res, new BadInputError('malformed request target', { cause: err }))
      return
    }
    const route = routeOf(url.pathname)
    res.once('close', () => { metrics?.requests.inc({ route, status: String(res.statusCode) }) })
    // Paths only in logs: the query may carry a capability's key.
    handle(req, res, url, route).catch((err: unknown) => {
      if (!(err instanceof CdnError)) logger.error({ err, path: url.pathname }, 'request failed')
      else if (err.status >= 500) logger.warn({ err: err.message, code: err.code, path: url.pathname }, 'content could not be served')
      else logger.debug({ err: err.message, code: err.code, path: url.pathname }, 'request refused')
      sendError(res, err)
    })
  }
}

const CONTENT_PATH = /^\/c\/([^/]+)(?:\/[^/]*)?$/

function routeOf (pathname: string): Route {
  if (CONTENT_PATH.test(pathname)) return 'content'
  if (pathname === '/metrics') return 'metrics'
  if (pathname === '/health') return 'health'
  return 'other'
}
