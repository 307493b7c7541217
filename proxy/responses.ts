/**
 * Every response the gateway sends is built here, so statuses and headers
 * stay in one place as Range, conditional requests and the dashboard arrive.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { sendJson } from '../core/http-reply.ts'
import type { ContentMetadata } from '../core/manifest.ts'

export interface ContentHead {
  id: string
  size: number
  metadata: ContentMetadata
}

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

export function contentHeaders (c: ContentHead): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {
    'content-type': safeMediaType(c.metadata.type),
    'content-length': String(c.size),
    etag: `"${c.id}"`,
    // The id names these exact bytes forever; `private` because a capability's key may be in the URL.
    'cache-control': 'private, max-age=31536000, immutable',
    'x-content-type-options': 'nosniff',
    // Published HTML must not run scripts on the proxy's origin (the dashboard lives there).
    'content-security-policy': 'sandbox'
  }
  if (c.metadata.name !== '') headers['content-disposition'] = contentDisposition(c.metadata.name)
  return headers
}

/** RFC 9110 §13.1.2: the client's copy is current when one of its entity tags (weak comparison) is ours, or `*`. */
export function isNotModified (req: IncomingMessage, id: string): boolean {
  const header = req.headers['if-none-match']
  if (header == null) return false
  return header.split(',').some((tag) => {
    const t = tag.trim()
    return t === '*' || t === `"${id}"` || t === `W/"${id}"`
  })
}

export function sendContentHead (res: ServerResponse, c: ContentHead): void {
  res.writeHead(200, contentHeaders(c))
}

export function sendNotModified (res: ServerResponse, id: string): void {
  res.writeHead(304, { etag: `"${id}"`, 'cache-control': 'private, max-age=31536000, immutable' })
  res.end()
}

export function sendHealth (res: ServerResponse): void {
  sendJson(res, 200, { ok: true })
}
