/**
 * The manager's name routes (docs/PROTOCOLS.md, "Names and generations"):
 * - `GET /api/names/<name>`: the signed record of the name's newest
 *   generation. A public one needs nothing; a private one what its content
 *   needs (a capability naming it, or a token that may read it).
 * - `GET /api/names/<name>/generations`: every generation kept (a token:
 *   the name's owner, an admin or a reader).
 * A name travels percent-encoded as one path segment (`films%2Flaunch.mp4`),
 * so a name ending in `/generations` stays unambiguous.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { BadInputError, ForbiddenError, NotFoundError, UnauthorizedError } from '../../core/errors.ts'
import { sendJson } from '../../core/http-reply.ts'
import { parseName } from '../../core/names.ts'
import type { Catalog } from '../catalog/catalog.ts'
import type { NameStore } from '../catalog/names.ts'
import type { Principal, TokenStore } from '../catalog/tokens.ts'
import { LIST_ROLES, mayReadPrivate, mayUseOwned } from './access.ts'
import type { Capabilities } from './capabilities.ts'
import type { NameService } from './name-service.ts'
import { optionalSeconds, readObjectBody, singleHeader } from './wire.ts'

export interface NameRoutesComponents {
  names: NameStore
  service: NameService
  catalog: Pick<Catalog, 'getVisible' | 'recordEvent'>
  tokens: Pick<TokenStore, 'authorize'>
  capabilities: Pick<Capabilities, 'check' | 'issueForName'>
}

type Handler = (req: IncomingMessage, res: ServerResponse, match: RegExpExecArray, url: URL) => Promise<void>

/** A name from its percent-encoded path segment. */
export function nameOf (segment: string): string {
  let text: string
  try {
    text = decodeURIComponent(segment)
  } catch (err) {
    throw new BadInputError('malformed name in the path', { cause: err })
  }
  return parseName(text)
}

export function nameRoutes (c: NameRoutesComponents): Array<{ pattern: RegExp, methods: Record<string, Handler> }> {
  /** A presented token is checked even where none is needed (a wrong one is a 401). */
  const caller = async (req: IncomingMessage): Promise<Principal | undefined> => {
    if (req.headers.authorization == null) return undefined
    return await c.tokens.authorize(req.headers.authorization, ['admin', 'publisher', 'reader', 'join'])
  }

  const record: Handler = async (req, res, m) => {
    const name = nameOf(m[1])
    const who = await caller(req)
    const capability = singleHeader(req.headers, 'x-cdn-capability')
    const latest = await c.names.latest(name)
    if (latest == null) throw new NotFoundError(`no name ${name}`)
    if (capability != null) await c.capabilities.check(capability, latest.content, async () => [name])
    const content = await c.catalog.getVisible(latest.content)
    if (content == null) throw new NotFoundError(`generation ${latest.seq} of ${name}, its newest, was deleted`)
    if (content.private && capability == null) {
      if (who == null) throw new UnauthorizedError(`the name ${name} is private: present a capability (x-cdn-capability) or a token`)
      if (!mayReadPrivate(content, who)) throw new ForbiddenError(`the name ${name} is private and this ${who.role} token may not read it`)
    }
    sendJson(res, 200, await c.service.record(latest))
  }

  const generations: Handler = async (req, res, m) => {
    const name = nameOf(m[1])
    const who = await c.tokens.authorize(req.headers.authorization, LIST_ROLES)
    const found = await c.names.get(name)
    if (found == null) throw new NotFoundError(`no name ${name}`)
    if (who.role === 'publisher' && who.id !== found.owner) throw new ForbiddenError(`the name ${name} belongs to another publisher`)
    const list = await c.names.generations(name)
    sendJson(res, 200, {
      name,
      keep: found.keep,
      generations: list.map(g => ({ seq: g.seq, content: g.content, createdAt: new Date(g.createdAt).toISOString(), size: g.size, added: g.added }))
    })
  }

  /** A capability for the name (its owner or an admin): it opens every generation, later ones included. */
  const share: Handler = async (req, res, m) => {
    const name = nameOf(m[1])
    const who = await c.tokens.authorize(req.headers.authorization, ['admin', 'publisher'])
    const found = await c.names.get(name)
    if (found == null) throw new NotFoundError(`no name ${name}`)
    if (!mayUseOwned(found.owner, who)) throw new ForbiddenError(`the name ${name} belongs to another publisher`)
    const issued = await c.capabilities.issueForName(name, optionalSeconds((await readObjectBody(req)).ttlSeconds, 'ttlSeconds'))
    const expiresAt = new Date(issued.expiresAt).toISOString()
    await c.catalog.recordEvent({ kind: 'content-shared', detail: { name, by: who.id, expiresAt } })
    sendJson(res, 201, { name, capability: issued.capability, expiresAt })
  }

  return [
    { pattern: /^\/api\/names\/([^/]+)$/, methods: { GET: record } },
    { pattern: /^\/api\/names\/([^/]+)\/share$/, methods: { POST: share } },
    { pattern: /^\/api\/names\/([^/]+)\/generations$/, methods: { GET: generations } }
  ]
}
