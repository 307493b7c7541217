/**
 * Every response the gateway sends is built here, so statuses and headers
 * stay in one place as Range, conditional requests and the dashboard arrive.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { sendJson } from '../../core/http-reply.ts'
import type { ContentMetadata } from '../../core/manifest.ts'

export interface ContentHead {
  id: string
  size: number
  metadata: ContentMetadata
  /** the manifest's signed creation time, an ISO date: Last-Modified */
  createdAt?: string
  /**
   * Served under an address whose answer may change (a name): checked again
   * on every use instead of cached for a year, with these headers added.
   */
  changing?: OutgoingHttpHeaders
}

/** An id names its bytes forever; `private` because a capability's key may be in the URL. */
const FOREVER = 'private, max-age=31536000, immutable'
const EACH_TIME = 'private, no-cache'

/** RFC 6838 type/subtype with optional parameters; anything else (a publisher's typo or an injection attempt) is served as bytes. */
const MEDIA_TYPE = /^[A-Za-z0-9][\w!#$&^.+-]{0,126}\/[A-Za-z0-9][\w!#$&^.+-]{0,126}(\s*;\s*[\w!#$&^.+-]+=("[^"\r\n]*"|[\w!#$&^.+-]+))*$/

export function safeMediaType (type: string): string {
  return MEDIA_TYPE.test(type) ? type : 'application/octet-stream'
}

/** RFC 6266 / RFC 8187 `filename*`: any name survives, and no byte of it can break the header. */
function contentDisposition (name: string): string {
  const encoded = encodeURIComponent(name).replace(/['()*]/g, c => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
  return `inline; filename*=UTF-8''${encoded}`
}

/** Last-Modified of a content: its signed creation time, as an HTTP date. */
export function lastModified (c: ContentHead): string | undefined {
  const t = c.createdAt == null ? NaN : Date.parse(c.createdAt)
  return Number.isFinite(t) ? new Date(t).toUTCString() : undefined
}

export function contentHeaders (c: ContentHead): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    'content-type': safeMediaType(c.metadata.type),
    'content-length': String(c.size),
    'accept-ranges': 'bytes',
    etag: `"${c.id}"`,
    'cache-control': c.changing == null ? FOREVER : EACH_TIME,
    'x-content-type-options': 'nosniff',
    // Published HTML must not run scripts on the proxy's origin (the dashboard lives there).
    'content-security-policy': 'sandbox',
    // The URL may carry a key or a capability: no page it links to may learn it.
    'referrer-policy': 'no-referrer'
  }
  if (c.metadata.name !== '') headers['content-disposition'] = contentDisposition(c.metadata.name)
  const modified = lastModified(c)
  if (modified != null) headers['last-modified'] = modified
  return { ...headers, ...c.changing }
}

export function sendContentHead (res: ServerResponse, c: ContentHead): void {
  res.writeHead(200, contentHeaders(c))
}

/** 206 for one byte range (RFC 9110 §15.3.7); start and end inclusive. */
export function sendPartialHead (res: ServerResponse, c: ContentHead, start: number, end: number): void {
  res.writeHead(206, { ...contentHeaders(c), 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${c.size}` })
}

/** 416 names the current length so the client can ask again (RFC 9110 §15.5.17). */
export function sendRangeNotSatisfiable (res: ServerResponse, c: ContentHead, reason: string): void {
  sendJson(res, 416, { error: { code: 'ERR_RANGE_NOT_SATISFIABLE', message: reason } }, { 'content-range': `bytes */${c.size}`, 'accept-ranges': 'bytes', etag: `"${c.id}"` })
}

export function sendPreconditionFailed (res: ServerResponse, c: ContentHead): void {
  sendJson(res, 412, { error: { code: 'ERR_PRECONDITION_FAILED', message: 'If-Match does not match this content' } }, { etag: `"${c.id}"` })
}

export function sendHtml (res: ServerResponse, html: string): void {
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    // Our own pages: scripts and media only from the proxy itself.
    'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; media-src 'self'"
  })
  res.end(html)
}

export function sendPac (res: ServerResponse, pac: string): void {
  res.writeHead(200, { 'content-type': 'application/x-ns-proxy-autoconfig', 'content-length': Buffer.byteLength(pac), 'cache-control': 'no-cache' })
  res.end(pac)
}

export function sendNotModified (res: ServerResponse, c: Pick<ContentHead, 'id' | 'changing'>): void {
  res.writeHead(304, { etag: `"${c.id}"`, 'cache-control': c.changing == null ? FOREVER : EACH_TIME, ...c.changing })
  res.end()
}

export function sendHealth (res: ServerResponse): void {
  sendJson(res, 200, { ok: true })
}
