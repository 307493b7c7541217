/**
 * The node's HTTP data plane (PROTOCOLS.md): chunk blobs, have-bitmaps,
 * health and metrics. Blob bodies go out through node/blob-sender.ts: read in
 * whole chunks into reused buffers, paid for from the node's one egress token
 * bucket, with the response's backpressure honoured, so memory per request
 * stays at one buffer and a slow or vanished client costs nothing.
 *
 * Nobody can hold the server open: core/http-guard.ts bounds headers, idle
 * sockets (which also cuts a reader that stopped reading) and connections
 * per client, and a chunk response not finished within its deadline is cut.
 */
import { COPY_HEADER } from '../core/data-plane-wire.ts'
import { noneMatch } from '../core/etag.ts'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { CID } from 'multiformats/cid'
import type { Counter, Registry } from 'prom-client'
import type { BandwidthLimiter } from '../core/bandwidth-limiter.ts'
import { BadInputError, CdnError, describeError, InterruptedError, MethodNotAllowedError, NotFoundError } from '../core/errors.ts'
import { guardServer, type HttpLimits } from '../core/http-guard.ts'
import { sendError, sendJson } from '../core/http-reply.ts'
import { parseBlobId, parseContentId } from '../core/ids.ts'
import type { Logger } from '../core/log.ts'
import { serveMetrics } from '../core/metrics.ts'
import { sendBlob, type BlobSendComponents } from './blob-sender.ts'
import type { BlobReader, BlobStore } from './blob-store.ts'
import { BufferPool } from './buffer-pool.ts'
import type { ContentIndex } from './content-index.ts'
import type { LoadMeter } from './load-meter.ts'
import type { NodeMetrics } from './node-metrics.ts'
import { ResponseDeadlines } from './response-deadlines.ts'

export interface DataPlaneComponents {
  store: Pick<BlobStore, 'openReader' | 'has' | 'size'>
  index: Pick<ContentIndex, 'have' | 'contentsOf'>
  /** shared egress budget of the node */
  limiter: BandwidthLimiter
  meter: Pick<LoadMeter, 'request' | 'sent'>
  metrics: Pick<NodeMetrics, 'bytesServed' | 'requests'>
  registry: Registry
  /** body of `GET /health` minus `ok` */
  health: () => Record<string, unknown>
  logger: Logger
}

export interface DataPlaneInit {
  /** default 127.0.0.1 */
  host?: string
  /** default 0 (ephemeral) */
  port?: number
  /**
   * bytes paid for and written per step under an egress cap (default: the
   * limiter's burst, what the bucket lets through at once anyway, so the cap
   * is as smooth as before while a 25 MB/s node pays once per chunk)
   */
  sliceSize?: number
  /** bytes read from disk at once; a chunk blob of the default size goes in one read (default 1 MiB + 64 KiB) */
  readSize?: number
  /** ms a chunk response may take from its headers to its last byte before it is cut (default 60 s) */
  responseDeadlineMs?: number
  /** timeouts and connection caps (core/http-guard.ts defaults) */
  limits?: HttpLimits
}

const DEFAULT_READ = 1024 * 1024 + 64 * 1024
/** read buffers kept for reuse; more are made while a burst of requests lasts */
const POOLED_BUFFERS = 8
const DEFAULT_RESPONSE_DEADLINE_MS = 60_000
/**
 * Sent by nodes fetching a blob to execute a store order. Such transfers are
 * the pool moving its own data, not viewers' demand: they count in the
 * node's egress, not in the per-content load the manager mirrors on.
 */
/** Chunks never change under their id, so caches may keep them forever. */
const IMMUTABLE = 'public, max-age=31536000, immutable'

type Route = 'chunk' | 'have' | 'health' | 'metrics' | 'other'

export class DataPlane {
  private readonly c: DataPlaneComponents
  private readonly host: string
  private readonly port: number
  private readonly sliceSize: number
  private readonly responseDeadlineMs: number
  private readonly limits: HttpLimits
  private readonly log: Logger
  private readonly sender: BlobSendComponents
  private readonly deadlines: ResponseDeadlines
  private readonly servedChunkBytes: Counter.Internal
  private server?: Server
  private baseUrl?: string

  constructor (components: DataPlaneComponents, init: DataPlaneInit = {}) {
    this.c = components
    this.log = components.logger
    this.host = init.host ?? '127.0.0.1'
    this.port = init.port ?? 0
    this.sliceSize = Math.max(1, Math.min(init.sliceSize ?? Infinity, components.limiter.burst))
    this.responseDeadlineMs = init.responseDeadlineMs ?? DEFAULT_RESPONSE_DEADLINE_MS
    this.limits = init.limits ?? {}
    this.sender = { limiter: components.limiter, pool: new BufferPool({ size: init.readSize ?? DEFAULT_READ, keep: POOLED_BUFFERS }) }
    this.deadlines = new ResponseDeadlines({ deadlineMs: this.responseDeadlineMs })
    this.servedChunkBytes = components.metrics.bytesServed.labels({ route: 'chunk' })
  }

  /** Base URL, e.g. http://127.0.0.1:9103; only once started. */
  get url (): string {
    if (this.baseUrl == null) throw new Error('data plane is not started')
    return this.baseUrl
  }

  /** Listens; returns the base URL. Starting twice is harmless. */
  async start (): Promise<string> {
    if (this.baseUrl != null) return this.baseUrl
    const server = createServer({ keepAlive: true }, (req, res) => { this.onRequest(req, res) })
    guardServer(server, this.limits)
    server.on('clientError', (err, socket) => {
      this.log.debug({ err: describeError(err) }, 'malformed HTTP request')
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n')
      else socket.destroy()
    })
    server.listen(this.port, this.host)
    await once(server, 'listening')
    this.server = server
    const addr = server.address() as AddressInfo
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address
    this.baseUrl = `http://${host}:${addr.port}`
    this.log.info({ url: this.baseUrl }, 'data plane listening')
    return this.baseUrl
  }

  /** Stops accepting, cuts transfers in progress and closes every connection. Safe to call twice. */
  async stop (): Promise<void> {
    const server = this.server
    if (server == null) return
    this.server = undefined
    this.baseUrl = undefined
    // Every response in progress ends with its connection, which aborts its transfer.
    const closed = new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    server.closeAllConnections()
    await closed
    this.deadlines.close()
  }

  private onRequest (req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0]
    const route = routeOf(path)
    res.on('close', () => {
      this.c.metrics.requests.inc({ route, status: res.writableFinished ? String(res.statusCode) : 'aborted' })
    })
    // A GET carries no body we want; reading it keeps the connection reusable.
    req.resume()
    this.handle(req, res, route, path).catch((err: unknown) => {
      if (!(err instanceof CdnError)) this.log.error({ err: describeError(err), url: req.url }, 'data plane request failed')
      sendError(res, err)
    })
  }

  private async handle (req: IncomingMessage, res: ServerResponse, route: Route, path: string): Promise<void> {
    if (route === 'other') throw new NotFoundError(`no such path ${path.slice(0, 200)}`)
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      throw new MethodNotAllowedError(`${String(req.method)} is not allowed here`)
    }
    if (hasBody(req)) {
      // Nothing here takes a body; one announced would only be read for nothing.
      res.setHeader('connection', 'close')
      throw new BadInputError(`${String(req.method)} requests here carry no body`)
    }
    switch (route) {
      case 'chunk': {
        await this.serveChunk(req, res, parseBlobId(path.slice('/chunk/'.length)))
        return
      }
      case 'have': {
        const id = parseContentId(path.slice('/have/'.length))
        const have = this.c.index.have(id)
        if (have == null) throw new NotFoundError(`content ${id.toString()} is not held here`)
        sendJson(res, 200, have)
        return
      }
      case 'health': {
        sendJson(res, 200, { ok: true, ...this.c.health() })
        return
      }
      case 'metrics': {
        await serveMetrics(this.c.registry, req, res)
      }
    }
  }

  private async serveChunk (req: IncomingMessage, res: ServerResponse, cid: CID): Promise<void> {
    const id = cid.toString()
    const etag = `"${id}"`
    if (!this.c.store.has(cid)) throw new NotFoundError(`blob ${id} is not held here`)
    const contents = req.headers[COPY_HEADER] != null ? NO_CONTENTS : this.c.index.contentsOf(id)
    this.c.meter.request(contents)
    if (noneMatch(req.headers['if-none-match'], etag)) {
      res.writeHead(304, ['etag', etag, 'cache-control', IMMUTABLE])
      res.end()
      return
    }
    // Opened before the headers go out, so a blob deleted meanwhile is still a clean 404.
    const reader = await this.c.store.openReader(cid)
    try {
      res.writeHead(200, ['content-type', 'application/octet-stream', 'content-length', String(reader.size), 'etag', etag, 'cache-control', IMMUTABLE])
      if (req.method === 'HEAD') {
        res.end()
        return
      }
      await this.streamBody(res, reader, contents, id)
    } finally {
      await reader.close()
    }
  }

  /**
   * Streams the body under the response's deadline: bytes still in the
   * socket's buffer after the last write count too, so a reader too slow to
   * take them is cut as well. Headers are out by now, so a failure can only
   * cut the connection.
   */
  private async streamBody (res: ServerResponse, reader: Pick<BlobReader, 'size' | 'readInto'>, contents: readonly string[], id: string): Promise<void> {
    // Gone while the file was being opened: its 'close' has been and gone.
    if (res.destroyed) return
    const stop = new AbortController()
    const onClose = (): void => { if (!res.writableFinished) stop.abort(new InterruptedError('client went away')) }
    res.on('close', onClose)
    const unwatch = this.deadlines.watch(() => {
      if (res.writableFinished) return
      this.log.debug({ blob: id, deadlineMs: this.responseDeadlineMs }, 'chunk response past its deadline; cut')
      res.destroy()
    })
    res.once('close', unwatch)
    let sent = 0
    try {
      await sendBlob(this.sender, res, reader, {
        slice: this.sliceSize,
        signal: stop.signal,
        onSent: (n) => {
          sent += n
          this.c.meter.sent(contents, n)
        }
      })
    } catch (err) {
      if (stop.signal.aborted) this.log.debug({ blob: id, reason: describeError(stop.signal.reason) }, 'chunk transfer cut short')
      else this.log.warn({ blob: id, err: describeError(err) }, 'chunk transfer failed')
      res.destroy()
    } finally {
      res.off('close', onClose)
      this.servedChunkBytes.inc(sent)
    }
  }
}

const NO_CONTENTS: readonly string[] = []

function hasBody (req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  return req.headers['transfer-encoding'] != null || (length != null && length !== '0')
}

function routeOf (path: string): Route {
  if (path.startsWith('/chunk/')) return 'chunk'
  if (path.startsWith('/have/')) return 'have'
  if (path === '/health') return 'health'
  if (path === '/metrics') return 'metrics'
  return 'other'
}

