/**
 * The manager's HTTP API (docs/PROTOCOLS.md, "Manager HTTP API"). Every
 * input is validated and every caller authorized here (the rules themselves
 * are in access.ts) before it reaches a service, and every answer is built in
 * this module: JSON through core/http-reply.ts, staged blobs with the same
 * headers a node's /chunk sends.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import { encodeKey } from '../../core/chunk-crypto.ts'
import { BadInputError, CdnError, describeError, ForbiddenError, MethodNotAllowedError, NotFoundError, UnauthorizedError } from '../../core/errors.ts'
import { HTTP_LIMIT_DEFAULTS } from '../../core/http-guard.ts'
import { readJsonBody, sendError, sendJson } from '../../core/http-reply.ts'
import { parseBlobId, parseContentId } from '../../core/ids.ts'
import type { Logger } from '../../core/log.ts'
import { serveMetrics } from '../../core/metrics.ts'
import { ADMIN_ROLES, LIST_ROLES, MANAGE_ROLES, mayList, mayManage, mayReadPrivate, PUBLISH_ROLES } from './access.ts'
import type { Capabilities } from './capabilities.ts'
import type { Catalog, ContentRow } from '../catalog/catalog.ts'
import type { ContentDeleter } from '../publish/delete.ts'
import type { KeyCustody } from '../catalog/key-custody.ts'
import type { ManagerMetrics } from '../metrics.ts'
import type { NodeAdmin } from '../nodes/node-admin.ts'
import type { Publisher } from '../publish/publish.ts'
import { watchUpload } from '../publish/stall-watch.ts'
import type { ReportVerifier } from '../replication/report-verifier.ts'
import type { Staging } from '../publish/staging.ts'
import { checkPeerId, contentJson, DEFAULT_EVENTS, DIGITS, MAX_EVENTS, MAX_REASON_CHARS, MAX_REPORT_BYTES, nodeJson, optionalSeconds, parsePublishHeaders, publishOutcome, readObjectBody, sendBlob, singleHeader, TOKEN_ID, tokenJson, withPeer } from './wire.ts'
import { checkRole, checkTokenName, type Principal, type TokenStore } from '../catalog/tokens.ts'
import type { NameStore } from '../catalog/names.ts'
import { nameRoutes } from './name-routes.ts'
import { uploadRoutes } from './upload-routes.ts'
import type { SessionPublisher } from '../publish/session-publisher.ts'
import type { NameService } from './name-service.ts'

export interface ApiComponents {
  catalog: Catalog
  keys: KeyCustody
  tokens: TokenStore
  /** issues and checks the capabilities of private contents */
  capabilities: Capabilities
  staging: Staging
  publisher: Publisher
  deleter: ContentDeleter
  metricsRegistry: Registry
  metrics: ManagerMetrics
  /** this manager's identity and addresses, the pool's identity and its live managers' URLs, for GET /api/info */
  info: () => { peerId: string, multiaddrs: string[], http: string, pool: string, managers: string[] }
  /** drain and removal of nodes, and their health */
  nodeAdmin: NodeAdmin
  /** ms an upload may wait for the client's next bytes before it is cut (default: core/http-guard.ts's idle timeout) */
  uploadIdleMs?: number
  /** the replication invariant's minimum and the controller's last round, for GET /api/health/replication */
  replication: () => { minCopies: number, pendingActions: number, lastRound: unknown, repairBlocked?: unknown[], controller?: { self: boolean, epoch?: number, holder?: { peerId: string, http?: string } | null } }
  /** bad-copy reports: rate-limited, verified by fetching the copy before anything changes */
  reports: Pick<ReportVerifier, 'submit'>
  /** the signed node list (kind `node-list`) for GET /api/pool/nodes */
  nodeList: () => Promise<string>
  /** the web console under /ui (manager/ui/), with its own session login; absent: no console */
  ui?: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>
  /** names and generations (name-routes.ts); absent: publishes name nothing and /api/names is not served */
  names?: { store: NameStore, service: NameService }
  /** differential upload sessions (upload-routes.ts), served beside the name routes */
  sessions?: { publisher: SessionPublisher, maxChunkBytes: number }
  logger: Logger
}

type Handler = (req: IncomingMessage, res: ServerResponse, match: RegExpExecArray, url: URL) => Promise<void>

interface Route {
  pattern: RegExp
  methods: Record<string, Handler>
}


export interface ApiHandlerOptions {
  /**
   * Serve only the blob routes (`/staging/`, `/manifest/`): the plain-HTTP
   * side of a manager whose API is HTTPS. Nodes fetch those blobs (ciphertext,
   * checked against their ids) without trusting the API's certificate.
   */
  blobsOnly?: boolean
}

/** Builds the request handler of the manager's HTTP server. */
export function createApiHandler (c: ApiComponents, options: ApiHandlerOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const log = c.logger

  /** Makes every commit so far durable before a client is told it happened (docs/PROTOCOLS.md, "Durability"). */
  const durable = async (): Promise<void> => { await c.catalog.sync() }

  /** The caller's token when one is presented; a presented token that is wrong, expired or revoked is a 401 even where none is needed. */
  const caller = async (req: IncomingMessage): Promise<Principal | undefined> => {
    if (req.headers.authorization == null) return undefined
    return c.tokens.authorize(req.headers.authorization, ['admin', 'publisher', 'reader', 'join'])
  }

  /** A visible content the caller may delete or share: the token and its role first (401/403), then the content (404), then ownership (403). */
  const managed = async (req: IncomingMessage, rawId: string): Promise<{ who: Principal, content: ContentRow }> => {
    const who = await c.tokens.authorize(req.headers.authorization, MANAGE_ROLES)
    const id = parseContentId(rawId).toString()
    const content = await c.catalog.getVisible(id)
    if (content == null) throw new NotFoundError(`no content ${id}`)
    if (!mayManage(content, who)) throw new ForbiddenError(`content ${id} belongs to another publisher`)
    return { who, content }
  }

  const info: Handler = async (_req, res) => {
    sendJson(res, 200, c.info())
  }

  const publish: Handler = async (req, res) => {
    const upload = watchUpload(req, res, c.uploadIdleMs ?? HTTP_LIMIT_DEFAULTS.idleTimeout, 'upload')
    try {
      const who = await c.tokens.authorize(req.headers.authorization, PUBLISH_ROLES)
      const h = parsePublishHeaders(req.headers)
      const named = await c.names?.service.beforePublish(req.headers, who)
      const lineage = named?.lineageKey != null ? { name: named.name, key: named.lineageKey } : undefined
      const { added, ...result } = await c.publisher.publish({ body: upload.body, publisher: who.id, owner: who.id, ...h, signal: upload.signal, lineage })
      await durable()
      // Once the content is visible: a generation is appended, and older ones beyond keep deleted.
      const generation = named == null ? undefined : await c.names?.service.afterPublish(named, { ...result, added }, who)
      if (generation != null) await durable()
      c.metrics.publishes.inc({ outcome: 'ok' })
      sendJson(res, 201, { ...result, private: h.private, ...generation })
    } catch (err) {
      c.metrics.publishes.inc({ outcome: publishOutcome(err) })
      // What is left of the body is not wanted: answer, then close rather than read it all.
      if (!req.complete) res.setHeader('connection', 'close')
      throw err
    } finally {
      upload.stop()
    }
  }

  const listContents: Handler = async (req, res) => {
    const who = await c.tokens.authorize(req.headers.authorization, LIST_ROLES)
    sendJson(res, 200, { contents: (await c.catalog.listVisible()).filter(x => mayList(x, who)).map(contentJson) })
  }

  /**
   * Public contents resolve for anyone. A private one needs a capability
   * naming it, or a token that may read it: none is 401, a bad one 403, and
   * neither answer carries its key, name or holders. Every credential
   * presented is checked, even where none is needed.
   */
  const resolve: Handler = async (req, res, m) => {
    const id = parseContentId(m[1]).toString()
    const who = await caller(req)
    const capability = singleHeader(req.headers, 'x-cdn-capability')
    if (capability != null) await c.capabilities.check(capability, id, async () => await c.names?.store.namesOf(id) ?? [])
    const content = await c.catalog.getVisible(id)
    const key = content != null ? await c.keys.release(id) : undefined
    if (content?.manifest == null || key == null) throw new NotFoundError(`no content ${id}`)
    if (content.private && capability == null) {
      if (who == null) throw new UnauthorizedError(`content ${id} is private: present a capability (x-cdn-capability) or a token`)
      if (!mayReadPrivate(content, who)) throw new ForbiddenError(`content ${id} is private and this ${who.role} token may not read it`)
    }
    const holders = (await c.catalog.holdersOf(id)).map(n => ({ peerId: n.peerId, http: n.http, multiaddrs: n.addrs.map(a => withPeer(a, n.peerId)) }))
    sendJson(res, 200, { id, manifest: Buffer.from(content.manifest).toString('base64'), key: encodeKey(key), holders })
  }

  const remove: Handler = async (req, res, m) => {
    const { who, content } = await managed(req, m[1])
    await c.deleter.delete(content.id, who.id)
    await durable()
    sendJson(res, 200, { id: content.id, deleted: true })
  }

  const share: Handler = async (req, res, m) => {
    const { who, content } = await managed(req, m[1])
    const body = await readObjectBody(req)
    const issued = await c.capabilities.issue(content.id, optionalSeconds(body.ttlSeconds, 'ttlSeconds'))
    const expiresAt = new Date(issued.expiresAt).toISOString()
    await c.catalog.recordEvent({ kind: 'content-shared', content: content.id, detail: { by: who.id, expiresAt } })
    sendJson(res, 201, { id: content.id, capability: issued.capability, expiresAt })
  }

  const createToken: Handler = async (req, res) => {
    const who = await c.tokens.authorize(req.headers.authorization, ADMIN_ROLES)
    const body = await readObjectBody(req)
    const { token, info: t } = await c.tokens.create({ role: checkRole(body.role), name: checkTokenName(body.name), ttlSeconds: optionalSeconds(body.ttlSeconds, 'ttlSeconds') }, { by: who.id })
    await durable()
    log.info({ token: t.id, role: t.role, by: who.id }, 'token created')
    sendJson(res, 201, { id: t.id, token, role: t.role, name: t.name, expiresAt: t.expiresAt == null ? null : new Date(t.expiresAt).toISOString() })
  }

  const listTokens: Handler = async (req, res) => {
    await c.tokens.authorize(req.headers.authorization, ADMIN_ROLES)
    sendJson(res, 200, { tokens: (await c.tokens.list()).map(tokenJson) })
  }

  const revokeToken: Handler = async (req, res, m) => {
    const who = await c.tokens.authorize(req.headers.authorization, ADMIN_ROLES)
    if (!TOKEN_ID.test(m[1])) throw new BadInputError('a token id is 12 hex characters')
    await c.tokens.revoke(m[1], { by: who.id })
    await durable()
    log.info({ token: m[1], by: who.id }, 'token revoked')
    sendJson(res, 200, { id: m[1], revoked: true })
  }

  const nodes: Handler = async (req, res) => {
    await c.tokens.authorize(req.headers.authorization, LIST_ROLES)
    const holdings = await c.catalog.holdingsByNode()
    sendJson(res, 200, {
      nodes: (await c.catalog.listNodes()).map(n => {
        const h = holdings.get(n.peerId)
        return nodeJson(n, h, c.nodeAdmin.health(n, h))
      })
    })
  }

  const drainNode: Handler = async (req, res, m) => {
    const by = (await c.tokens.authorize(req.headers.authorization, ADMIN_ROLES)).id
    const peerId = checkPeerId(m[1], 'node')
    const n = await c.nodeAdmin.drain(peerId, by)
    await durable()
    const h = (await c.catalog.holdingsByNode()).get(peerId)
    sendJson(res, 202, { node: nodeJson(n, h, c.nodeAdmin.health(n, h)) })
  }

  const removeNode: Handler = async (req, res, m) => {
    const by = (await c.tokens.authorize(req.headers.authorization, ADMIN_ROLES)).id
    const peerId = checkPeerId(m[1], 'node')
    const removed = await c.nodeAdmin.remove(peerId, by)
    await durable()
    sendJson(res, 200, removed)
  }

  const replicationHealth: Handler = async (req, res) => {
    await c.tokens.authorize(req.headers.authorization, LIST_ROLES)
    const r = c.replication()
    sendJson(res, 200, { ...(await c.catalog.replicationSummary(r.minCopies)), minCopies: r.minCopies, pendingActions: r.pendingActions, lastRound: r.lastRound, ...(r.repairBlocked != null ? { repairBlocked: r.repairBlocked } : {}), ...(r.controller != null ? { controller: r.controller } : {}) })
  }

  /** Manifests of visible contents, for nodes receiving their first copy of a content (same headers as a node's /chunk). */
  const manifest: Handler = async (req, res, m) => {
    const id = parseContentId(m[1]).toString()
    const bytes = (await c.catalog.getVisible(id))?.manifest
    if (bytes == null) throw new NotFoundError(`no content ${id}`)
    sendBlob(req, res, id, bytes)
  }

  const events: Handler = async (req, res, _m, url) => {
    await c.tokens.authorize(req.headers.authorization, LIST_ROLES)
    const raw = url.searchParams.get('limit')
    let limit = DEFAULT_EVENTS
    if (raw != null) {
      if (!DIGITS.test(raw) || Number(raw) < 1 || Number(raw) > MAX_EVENTS) throw new BadInputError(`limit must be an integer from 1 to ${MAX_EVENTS}`)
      limit = Number(raw)
    }
    sendJson(res, 200, { events: await c.catalog.listEvents(limit) })

  }

  /** A proxy saw a bad copy: nothing changes until the copy is fetched from that node and its hash checked. */
  const report: Handler = async (req, res) => {
    const body = await readJsonBody(req, MAX_REPORT_BYTES)
    if (body == null || typeof body !== 'object' || Array.isArray(body)) throw new BadInputError('report must be a JSON object')
    const r = body as Record<string, unknown>
    const content = parseContentId(r.content).toString()
    const chunk = parseBlobId(r.chunk).toString()
    const node = checkPeerId(r.node, 'node')
    if (r.reason != null && (typeof r.reason !== 'string' || r.reason.length > MAX_REASON_CHARS)) {
      throw new BadInputError(`reason must be a string of at most ${MAX_REASON_CHARS} characters`)
    }
    const reason = typeof r.reason === 'string' ? r.reason : ''
    const intake = await c.reports.submit({ content, chunk, node, reason }, req.socket.remoteAddress ?? 'unknown')
    log.info({ content, chunk, node, reason, ...intake }, 'bad copy reported')
    sendJson(res, 202, { accepted: true, ...intake })
  }

  const poolNodes: Handler = async (_req, res) => {
    sendJson(res, 200, { list: await c.nodeList() })
  }

  const staged: Handler = async (req, res, m) => {
    const id = parseBlobId(m[1]).toString()
    const blob = await c.staging.read(id)
    if (blob == null) throw new NotFoundError(`${id} is not staged`)
    // The buffer is reused once every response writing it has finished or broken off.
    res.once('close', blob.release)
    sendBlob(req, res, id, blob.bytes)
  }

  const metrics: Handler = async (req, res) => {
    await serveMetrics(c.metricsRegistry, req, res)
  }

  const allRoutes: Route[] = [
    { pattern: /^\/api\/info$/, methods: { GET: info } },
    { pattern: /^\/api\/publish$/, methods: { POST: publish } },
    { pattern: /^\/api\/contents$/, methods: { GET: listContents } },
    { pattern: /^\/api\/contents\/([^/]+)$/, methods: { GET: resolve, DELETE: remove } },
    { pattern: /^\/api\/contents\/([^/]+)\/share$/, methods: { POST: share } },
    { pattern: /^\/api\/tokens$/, methods: { GET: listTokens, POST: createToken } },
    { pattern: /^\/api\/tokens\/([^/]+)$/, methods: { DELETE: revokeToken } },
    { pattern: /^\/api\/nodes$/, methods: { GET: nodes } },
    { pattern: /^\/api\/nodes\/([^/]+)\/drain$/, methods: { POST: drainNode } },
    { pattern: /^\/api\/nodes\/([^/]+)$/, methods: { DELETE: removeNode } },
    { pattern: /^\/api\/health\/replication$/, methods: { GET: replicationHealth } },
    { pattern: /^\/manifest\/([^/]+)$/, methods: { GET: manifest, HEAD: manifest } },
    { pattern: /^\/api\/events$/, methods: { GET: events } },
    { pattern: /^\/api\/reports$/, methods: { POST: report } },
    { pattern: /^\/api\/pool\/nodes$/, methods: { GET: poolNodes } },
    { pattern: /^\/staging\/([^/]+)$/, methods: { GET: staged, HEAD: staged } },
    { pattern: /^\/metrics$/, methods: { GET: metrics } },
    ...(c.names == null ? [] : nameRoutes({ names: c.names.store, service: c.names.service, catalog: c.catalog, tokens: c.tokens, capabilities: c.capabilities })),
    ...(c.names == null || c.sessions == null
      ? []
      : uploadRoutes({ sessions: c.sessions.publisher, maxChunkBytes: c.sessions.maxChunkBytes, service: c.names.service, catalog: c.catalog, tokens: c.tokens, metrics: c.metrics, uploadIdleMs: c.uploadIdleMs }))
  ]
  const routes = options.blobsOnly === true ? allRoutes.filter(r => r.methods.GET === manifest || r.methods.GET === staged) : allRoutes

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let url: URL
    try {
      url = new URL(req.url ?? '/', 'http://manager.invalid')
    } catch (err) {
      throw new BadInputError('malformed request URL', { cause: err })
    }
    if (c.ui != null && options.blobsOnly !== true && /^\/ui(\/|$)/.test(url.pathname)) return await c.ui(req, res, url)
    for (const r of routes) {
      const m = r.pattern.exec(url.pathname)
      if (m == null) continue
      const handler = r.methods[req.method ?? '']
      if (handler == null) {
        res.setHeader('allow', Object.keys(r.methods).join(', '))
        throw new MethodNotAllowedError(`${req.method ?? ''} is not allowed on ${url.pathname}`)
      }
      await handler(req, res, m, url)
      return
    }
    if (options.blobsOnly === true) throw new BadInputError('this manager serves its API over HTTPS only: use an https:// manager URL')
    throw new NotFoundError(`no route ${url.pathname}`)
  }

  return (req, res) => {
    route(req, res).catch((err: unknown) => {
      const fields = { method: req.method, url: req.url, err: describeError(err) }
      // Anything but a CdnError is a bug; a CdnError 5xx is the pool failing (nodes, capacity); 4xx is the client's.
      if (!(err instanceof CdnError)) log.error(fields, 'request failed unexpectedly')
      else if (err.status >= 500) log.warn({ ...fields, status: err.status }, 'request failed')
      else log.debug({ ...fields, status: err.status }, 'request refused')
      if (res.headersSent) {
        // A body was already on its way (a staged blob); the client sees a cut connection.
        res.destroy()
        return
      }
      sendError(res, err)
    })
  }
}
