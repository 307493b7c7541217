/**
 * The routes of differential upload sessions (docs/PROTOCOLS.md, "Upload
 * sessions"), beside the name routes:
 * - `POST /api/names/<name>/uploads`: the plan; answers which chunks to send;
 * - `PUT /api/names/<name>/uploads/<upload>/chunks/<index>`: one chunk's
 *   plaintext, answered once it has its copies;
 * - `POST /api/names/<name>/uploads/<upload>/commit`: the new generation.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { BadInputError } from '../../core/errors.ts'
import { HTTP_LIMIT_DEFAULTS } from '../../core/http-guard.ts'
import { readJsonBody, sendJson } from '../../core/http-reply.ts'
import type { Catalog } from '../catalog/catalog.ts'
import type { Principal, TokenStore } from '../catalog/tokens.ts'
import type { ManagerMetrics } from '../metrics.ts'
import { MAX_CHUNKS, MAX_REPLICAS } from '../publish/publish.ts'
import type { SessionPublisher } from '../publish/session-publisher.ts'
import { watchUpload } from '../publish/stall-watch.ts'
import { mayUseOwned, PUBLISH_ROLES } from './access.ts'
import { nameOf } from './name-routes.ts'
import type { NameService } from './name-service.ts'
import { parsePlanRequest } from './session-wire.ts'
import { publishOutcome } from './wire.ts'

export interface UploadRoutesComponents {
  sessions: SessionPublisher
  service: Pick<NameService, 'afterPublish'>
  catalog: Pick<Catalog, 'sync'>
  tokens: Pick<TokenStore, 'authorize'>
  metrics: Pick<ManagerMetrics, 'publishes' | 'bytesReceived'>
  /** the largest chunk a plan may announce */
  maxChunkBytes: number
  /** ms a chunk's body may stall (default: the HTTP idle timeout) */
  uploadIdleMs?: number
}

type Handler = (req: IncomingMessage, res: ServerResponse, match: RegExpExecArray, url: URL) => Promise<void>

/** A plan of 1 TiB in 512 KiB chunks is ~2 M entries of ~90 bytes; past this the plan is not one we would take. */
const MAX_PLAN_BYTES = 256 * 1024 * 1024

const UPLOAD_ID = /^upload-[0-9a-f-]{36}$/

function uploadOf (segment: string): string {
  if (!UPLOAD_ID.test(segment)) throw new BadInputError('malformed upload id in the path')
  return segment
}

export function uploadRoutes (c: UploadRoutesComponents): Array<{ pattern: RegExp, methods: Record<string, Handler> }> {
  const publisher = async (req: IncomingMessage): Promise<Principal> => await c.tokens.authorize(req.headers.authorization, PUBLISH_ROLES)

  const open: Handler = async (req, res, m) => {
    const name = nameOf(m[1])
    const who = await publisher(req)
    // A plan is part of what a publisher sends: counted with the chunks' bytes.
    const body = await readJsonBody(req, MAX_PLAN_BYTES, bytes => { c.metrics.bytesReceived.inc(bytes) })
    const request = parsePlanRequest(body, { maxChunkBytes: c.maxChunkBytes, maxChunks: MAX_CHUNKS, maxReplicas: MAX_REPLICAS })
    const opened = await c.sessions.open(name, who, request, owner => mayUseOwned(owner, who))
    await c.catalog.sync()
    sendJson(res, 200, opened)
  }

  const putChunk: Handler = async (req, res, m) => {
    const name = nameOf(m[1])
    const session = uploadOf(m[2])
    const index = Number(m[3])
    const who = await publisher(req)
    const upload = watchUpload(req, res, c.uploadIdleMs ?? HTTP_LIMIT_DEFAULTS.idleTimeout, 'chunk upload')
    try {
      // No checkpoint per chunk: a chunk whose rows a crash lost is only asked for again when the session resumes.
      const { stored } = await c.sessions.putChunk(name, session, index, who, upload.body, upload.signal)
      // A chunk already held is not read: close rather than drain its body.
      if (!req.complete) res.setHeader('connection', 'close')
      sendJson(res, 200, { index, stored })
    } catch (err) {
      if (!req.complete) res.setHeader('connection', 'close')
      throw err
    } finally {
      upload.stop()
    }
  }

  const commit: Handler = async (req, res, m) => {
    const name = nameOf(m[1])
    const upload = uploadOf(m[2])
    const who = await publisher(req)
    try {
      const { keep, ...result } = await c.sessions.commit(name, upload, who)
      await c.catalog.sync()
      // Once the content is visible: a generation is appended, and older ones beyond keep deleted.
      const generation = await c.service.afterPublish({ name, keep }, { ...result, added: result.uploadedBytes }, who)
      await c.catalog.sync()
      c.metrics.publishes.inc({ outcome: 'ok' })
      sendJson(res, 201, { ...result, ...generation })
    } catch (err) {
      c.metrics.publishes.inc({ outcome: publishOutcome(err) })
      throw err
    }
  }

  return [
    { pattern: /^\/api\/names\/([^/]+)\/uploads$/, methods: { POST: open } },
    { pattern: /^\/api\/names\/([^/]+)\/uploads\/([^/]+)\/chunks\/(0|[1-9][0-9]{0,8})$/, methods: { PUT: putChunk } },
    { pattern: /^\/api\/names\/([^/]+)\/uploads\/([^/]+)\/commit$/, methods: { POST: commit } }
  ]
}
