/**
 * `GET|HEAD /n/<name>[?k=<key>|?cap=<capability>]`: the newest generation
 * of a name, served exactly as `/c/<id>` serves that content (Range, HEAD,
 * conditional requests), once the name is resolved through a verified,
 * never-older record (resolve/name-records.ts).
 *
 * What differs from an id: the answer changes when a generation is
 * published, so it is never cached as immutable. It is revalidated each
 * time instead: its ETag is still the content id, so a browser holding the
 * current generation gets a 304 without a byte of the body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { BadInputError, NotFoundError } from '../../core/errors.ts'
import { parseName } from '../../core/names.ts'
import type { NameResolver } from '../resolve/name-records.ts'
import { serveContent, type Access, type ContentRouteComponents } from './content-route.ts'

export const NAME_PATH = /^\/n\/(.+)$/
/**
 * The host label that serves names when the browser uses the proxy as its
 * HTTP proxy: `http://n.<suffix>/<name>`. A content id is never one letter,
 * so it cannot be mistaken for one; a name keeps its slashes in the path.
 */
export const NAME_HOST_LABEL = 'n'

export interface NameRouteComponents extends ContentRouteComponents {
  /** absent: the proxy serves ids only */
  names?: NameResolver
}

/** The name in `/n/<name>` (or, on the name host, in `/<name>`): percent-decoded, then held to the names' syntax. */
export function nameFromPath (pathname: string, onNameHost = false): string {
  const m = onNameHost ? /^\/(.+)$/.exec(pathname) : NAME_PATH.exec(pathname)
  if (m == null) throw new NotFoundError(`no name in ${pathname}`)
  let text: string
  try {
    text = decodeURIComponent(m[1])
  } catch (err) {
    throw new BadInputError('malformed name', { cause: err })
  }
  return parseName(text)
}

export async function serveName (c: NameRouteComponents, req: IncomingMessage, res: ServerResponse, name: string, access: Access): Promise<void> {
  if (c.names == null) throw new NotFoundError('this proxy does not resolve names')
  const gone = new AbortController()
  const onClose = (): void => { gone.abort(new BadInputError('client closed the connection')) }
  res.once('close', onClose)
  let resolved
  try {
    resolved = await c.names.resolve(name, { capability: access.capability, signal: gone.signal })
  } finally {
    res.off('close', onClose)
  }
  // Which generation answered, and on whose word (`kept`: the manager did not answer), for people and tests.
  await serveContent(c, req, res, resolved.content, access, { 'x-cdn-name': encodeURIComponent(name), 'x-cdn-generation': String(resolved.seq), 'x-cdn-name-from': resolved.from, 'content-location': `/c/${resolved.content}` })
}
