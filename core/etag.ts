/**
 * Entity-tag preconditions (RFC 9110 §13.1), shared by every role that serves
 * immutable, content-addressed bytes: a node's chunks, the manager's staged
 * blobs and manifests, the proxy's contents.
 */

/** Splits a list header (If-None-Match, If-Match) into entity tags. */
function tags (header: string): string[] {
  return header.split(',').map(t => t.trim()).filter(t => t !== '')
}

function opaque (tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag
}

/** If-None-Match uses weak comparison (§13.1.2): true means answer 304. */
export function noneMatch (header: string | string[] | undefined, etag: string): boolean {
  if (header == null) return false
  return tags(Array.isArray(header) ? header.join(',') : header).some(t => t === '*' || opaque(t) === etag)
}

/** If-Match uses strong comparison (§13.1.1): false means answer 412. */
export function ifMatch (header: string | string[] | undefined, etag: string): boolean {
  if (header == null) return true
  return tags(Array.isArray(header) ? header.join(',') : header).some(t => t === '*' || t === etag)
}
