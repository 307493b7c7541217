/**
 * Capabilities as the proxy takes them: from `?cap=` in a link, checked for
 * shape only (the manager judges the signature, the content and the expiry),
 * then carried to the manager in the `x-cdn-capability` header and nowhere
 * else. Never logged, never written down.
 */
import { createHash } from 'node:crypto'
import { BadInputError } from '../core/errors.ts'

/** A capability is a few hundred characters; a URL longer than this is not one. */
export const MAX_CAPABILITY_CHARS = 4096

/** The header that carries a capability to the manager. */
export const CAPABILITY_HEADER = 'x-cdn-capability'

const SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/** Checks a capability's shape, so nothing but its own characters can reach a header; the message never repeats it. */
export function parseCapability (text: string): string {
  if (text.length === 0 || text.length > MAX_CAPABILITY_CHARS || !SHAPE.test(text)) {
    throw new BadInputError('malformed capability (?cap=): expected the text `cdn share` printed')
  }
  return text
}

/** A name for a capability in memory (cache slots), from which it cannot be read back. */
export function capabilityTag (capability: string): string {
  return createHash('sha256').update(capability).digest('base64url').slice(0, 22)
}

/** A URL as a log line may show it: no query, no credentials (either may carry a secret). */
export function loggableUrl (url: string): string {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`
  } catch {
    return '(unparsable URL)'
  }
}
