/**
 * What the manager's HTTP API reads and writes: request headers and small
 * JSON bodies checked into values (a clear 400 otherwise), and the JSON
 * shapes of nodes, contents and tokens it answers with.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { peerIdFromString } from '@libp2p/peer-id'
import { noneMatch } from '../../core/etag.ts'
import { BadInputError, CdnError } from '../../core/errors.ts'
import { readJsonBody } from '../../core/http-reply.ts'
import type { ContentRow, NodeHoldings, NodeRow } from '../catalog/catalog.ts'
import type { TokenInfo } from '../catalog/tokens.ts'
import type { PublishOutcome } from '../metrics.ts'
import type { PublishRequest } from '../publish/publish.ts'
import { parseChunkingMode, type ChunkingMode } from '../../core/chunker.ts'

export const MAX_NAME_CHARS = 1024
export const MAX_TYPE_CHARS = 255
export const MAX_REPORT_BYTES = 16 * 1024
export const MAX_SMALL_BODY_BYTES = 16 * 1024
export const MAX_REASON_CHARS = 500
export const DEFAULT_EVENTS = 100
export const MAX_EVENTS = 1000
/** RFC 9110 media type: type "/" subtype, optional parameters. */
export const MEDIA_TYPE = /^[A-Za-z0-9!#$&^_.+-]{1,127}\/[A-Za-z0-9!#$&^_.+-]{1,127}(\s*;\s*[^\s;=]+=[^;]*)*$/
export const DIGITS = /^\d{1,16}$/
/** A content may live at most this long (100 years); beyond, a TTL is a typo, not a wish. */
export const MAX_TTL_SECONDS = 100 * 365 * 86_400

export function singleHeader (headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  if (Array.isArray(v)) throw new BadInputError(`header ${name} given more than once`)
  return v
}

export function intHeader (headers: IncomingHttpHeaders, name: string): number | undefined {
  const v = singleHeader(headers, name)
  if (v == null) return undefined
  if (!DIGITS.test(v.trim())) throw new BadInputError(`header ${name} must be a non-negative integer`)
  return Number(v.trim())
}

/** What a publish request's headers say; `private` is `x-cdn-private: 1`. */
export type PublishHeaders = Pick<PublishRequest, 'name' | 'type' | 'replicas' | 'chunkSize' | 'chunking' | 'length' | 'ttlSeconds'> & { private: boolean }

export function flagHeader (headers: IncomingHttpHeaders, name: string): boolean {
  const v = singleHeader(headers, name)?.trim()
  if (v == null || v === '0') return false
  if (v === '1') return true
  throw new BadInputError(`header ${name} must be 1 or 0`)
}

/** `x-cdn-chunking: cdc|fixed`, how the upload is cut (absent: the manager's default). */
function chunkingHeader (headers: IncomingHttpHeaders): ChunkingMode | undefined {
  const v = singleHeader(headers, 'x-cdn-chunking')
  return v == null ? undefined : parseChunkingMode(v.trim(), 'header x-cdn-chunking')
}

/** Reads the publish headers of PROTOCOLS.md; ranges are the publisher's to check. */
export function parsePublishHeaders (headers: IncomingHttpHeaders): PublishHeaders {
  let name = 'untitled'
  const rawName = singleHeader(headers, 'x-cdn-name')
  if (rawName != null) {
    try {
      name = decodeURIComponent(rawName)
    } catch (err) {
      throw new BadInputError('header x-cdn-name must be URL-encoded', { cause: err })
    }
    // Names end up in terminals and dashboards: no control characters.
    if (name.length === 0 || name.length > MAX_NAME_CHARS || /[\u0000-\u001f\u007f]/.test(name)) { // eslint-disable-line no-control-regex
      throw new BadInputError(`x-cdn-name must be 1 to ${MAX_NAME_CHARS} printable characters`)
    }
  }
  const type = (singleHeader(headers, 'content-type') ?? 'application/octet-stream').trim()
  if (type.length > MAX_TYPE_CHARS || !MEDIA_TYPE.test(type)) throw new BadInputError(`content-type "${type.slice(0, 80)}" is not a media type`)
  const ttlSeconds = intHeader(headers, 'x-cdn-ttl')
  if (ttlSeconds != null && (ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS)) throw new BadInputError(`x-cdn-ttl must be from 1 to ${MAX_TTL_SECONDS} seconds`)
  return {
    name,
    type,
    ttlSeconds,
    private: flagHeader(headers, 'x-cdn-private'),
    replicas: intHeader(headers, 'x-cdn-replicas'),
    chunkSize: intHeader(headers, 'x-cdn-chunk-size'),
    chunking: chunkingHeader(headers),
    length: intHeader(headers, 'content-length')
  }
}

export function publishOutcome (err: unknown): PublishOutcome {
  const code = err instanceof CdnError ? err.code : ''
  switch (code) {
    case 'ERR_UNAUTHORIZED':
    case 'ERR_FORBIDDEN': return 'unauthorized'
    case 'ERR_BAD_INPUT':
    case 'ERR_PROTOCOL': return 'bad_input'
    case 'ERR_TOO_LARGE': return 'too_large'
    case 'ERR_CAPACITY': return 'capacity'
    case 'ERR_TIMEOUT': return 'timeout'
    case 'ERR_SHUTTING_DOWN': return 'aborted'
  }
  return err instanceof CdnError && err.status === 502 ? 'upstream' : 'error'
}

/** Answers GET/HEAD for an immutable blob named by its id, with the same headers as a node's `/chunk`. */
export function sendBlob (req: IncomingMessage, res: ServerResponse, id: string, bytes: Uint8Array): void {
  const etag = `"${id}"`
  const cache = { etag, 'cache-control': 'public, max-age=31536000, immutable' }
  if (noneMatch(req.headers['if-none-match'], etag)) {
    res.writeHead(304, cache)
    res.end()
    return
  }
  res.writeHead(200, { ...cache, 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) })
  res.end(req.method === 'HEAD' ? undefined : bytes)
}


export function withPeer (addr: string, peerId: string): string {
  return addr.includes('/p2p/') ? addr : `${addr}/p2p/${peerId}`
}

export function nodeJson (n: NodeRow, holdings: NodeHoldings | undefined, health: string): Record<string, unknown> {
  return {
    peerId: n.peerId,
    http: n.http,
    zone: n.zone,
    state: n.state,
    used: n.used,
    capacity: n.capacity,
    egressCap: n.egressCap,
    egressRate: n.egressRate,
    blobs: n.blobs,
    copies: holdings?.copies ?? 0,
    contents: holdings?.contents ?? 0,
    health,
    lastSeen: new Date(n.lastSeen).toISOString(),
    joinedAt: new Date(n.joinedAt).toISOString()
  }
}

export function contentJson (x: ContentRow & { copies: unknown }): Record<string, unknown> {
  return {
    id: x.id,
    name: x.name,
    type: x.type,
    size: x.size,
    chunks: x.chunkCount,
    replicas: x.replicas,
    createdAt: x.createdAt,
    expiresAt: x.expiresAt == null ? null : new Date(x.expiresAt).toISOString(),
    private: x.private,
    owner: x.owner,
    copies: x.copies
  }
}

export function tokenJson (t: TokenInfo): Record<string, unknown> {
  const iso = (ms: number | null): string | null => ms == null ? null : new Date(ms).toISOString()
  return { id: t.id, role: t.role, name: t.name, createdAt: iso(t.createdAt), expiresAt: iso(t.expiresAt), revoked: t.revokedAt != null, revokedAt: iso(t.revokedAt) }
}

/** A small JSON object body; an empty body is `{}` (e.g. a share with the default lifetime). */
export async function readObjectBody (req: IncomingMessage): Promise<Record<string, unknown>> {
  if (req.headers['content-length'] === '0' || (req.headers['content-length'] == null && req.headers['transfer-encoding'] == null)) {
    req.resume()
    return {}
  }
  const body = await readJsonBody(req, MAX_SMALL_BODY_BYTES)
  if (body == null || typeof body !== 'object' || Array.isArray(body)) throw new BadInputError('the body must be a JSON object')
  return body as Record<string, unknown>
}

export function optionalSeconds (v: unknown, what: string): number | undefined {
  if (v == null) return undefined
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new BadInputError(`${what} must be a positive integer`)
  return v
}

export const TOKEN_ID = /^[0-9a-f]{12}$/

export function checkPeerId (v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 128) throw new BadInputError(`${what} must be a peer id`)
  try {
    return peerIdFromString(v).toString()
  } catch (err) {
    throw new BadInputError(`${what} "${v.slice(0, 80)}" is not a peer id`, { cause: err })
  }
}
