/**
 * The manager's web console under `/ui` (docs/PROTOCOLS.md, "Manager
 * console"): a login form that takes an admin token in a POST body and
 * answers with a session cookie, the console page, and its data as JSON and
 * server-sent events. The session cookie is honoured by these routes only;
 * the token API (`/api/…`) keeps taking bearer tokens and nothing else.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { BadInputError, ForbiddenError, MethodNotAllowedError, NotFoundError, TooLargeError, UnauthorizedError } from '../../core/errors.ts'
import { sendJson } from '../../core/http-reply.ts'
import type { Logger } from '../../core/log.ts'
import { chartAssets, pageHeaders, sendAsset } from '../../core/web-assets.ts'
import type { TokenStore } from '../catalog/tokens.ts'
import { consoleState, type ConsoleDataComponents } from './console-data.ts'
import { consolePage, loginPage } from './console-page.ts'
import { readCookie, SESSION_COOKIE, sessionCookie, type Session, type SessionStore } from './session-store.ts'

export interface ConsoleComponents extends ConsoleDataComponents {
  tokens: Pick<TokenStore, 'identify' | 'get'>
  sessions: SessionStore
  logger: Logger
}

export interface ConsoleInit {
  /** ms between pushes of the live stream (default 1000) */
  streamIntervalMs?: number
}

export interface Console {
  /** answers a request under /ui */
  handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>
  /** ends the live streams */
  close (): void
}

const MAX_FORM_BYTES = 4096
const ASSET_PATH = /^\/ui\/assets\/([^/]+)$/

export function createConsole (c: ConsoleComponents, init: ConsoleInit = {}): Console {
  const interval = init.streamIntervalMs ?? 1000
  const assets = chartAssets()
  const streams = new Set<{ res: ServerResponse, timer: NodeJS.Timeout }>()

  /** The request's live session, checked against its token each time: a revoked or expired token ends it. */
  const sessionOf = async (req: IncomingMessage): Promise<Session | undefined> => {
    const s = c.sessions.get(readCookie(req.headers.cookie, SESSION_COOKIE))
    if (s == null) return undefined
    const t = await c.tokens.get(s.tokenId)
    if (t == null || t.role !== 'admin' || t.revokedAt != null || (t.expiresAt != null && t.expiresAt <= Date.now())) {
      c.sessions.delete(s.id)
      return undefined
    }
    return s
  }

  const requireSession = async (req: IncomingMessage): Promise<Session> => {
    const s = await sessionOf(req)
    if (s == null) throw new UnauthorizedError('no console session: log in at /ui')
    return s
  }

  const send = (req: IncomingMessage, res: ServerResponse, status: number, html: string, extra: Record<string, string> = {}): void => {
    // same-origin, not no-referrer: under no-referrer a browser posts forms with `Origin: null`, which sameOrigin() refuses.
    // No console URL carries a secret.
    res.writeHead(status, pageHeaders(html, { 'referrer-policy': 'same-origin', ...extra }))
    res.end(req.method === 'HEAD' ? undefined : html)
  }

  const secure = (req: IncomingMessage): boolean => (req.socket as { encrypted?: boolean }).encrypted === true

  const selectedOf = (url: URL): string | undefined => {
    const v = url.searchParams.get('content')
    return v != null && /^[a-z0-9]{1,128}$/i.test(v) ? v : undefined
  }

  async function login (req: IncomingMessage, res: ServerResponse): Promise<void> {
    sameOrigin(req)
    const token = (await readForm(req)).get('token')?.trim() ?? ''
    if (token === '') {
      send(req, res, 400, loginPage('Enter the admin token.'))
      return
    }
    try {
      const who = await c.tokens.identify(token)
      if (who.role !== 'admin') throw new ForbiddenError(`a ${who.role} token cannot open the console: it needs an admin token`)
      const s = c.sessions.create(who.id)
      c.logger.info({ token: who.id }, 'console login')
      res.writeHead(303, { location: '/ui', 'set-cookie': sessionCookie(s.id, c.sessions.ttlMs / 1000, secure(req)), 'cache-control': 'no-store', 'content-length': 0 })
      res.end()
    } catch (err) {
      if (!(err instanceof UnauthorizedError || err instanceof ForbiddenError)) throw err
      // The reason, never the token.
      c.logger.info({ reason: err.message }, 'console login refused')
      send(req, res, err.status, loginPage(`Refused: ${err.message}.`))
    }
  }

  function logout (req: IncomingMessage, res: ServerResponse): void {
    sameOrigin(req)
    c.sessions.delete(readCookie(req.headers.cookie, SESSION_COOKIE))
    res.writeHead(303, { location: '/ui', 'set-cookie': sessionCookie('', 0, secure(req)), 'cache-control': 'no-store', 'content-length': 0 })
    res.end()
  }

  function stream (req: IncomingMessage, res: ServerResponse, url: URL): void {
    const selected = selectedOf(url)
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    let closed = false
    let busy = false
    const push = async (): Promise<void> => {
      const state = await consoleState(c, selected)
      if (!closed) res.write(`data: ${JSON.stringify(state)}\n\n`)
    }
    /** One push at a time: a slow catalog read skips ticks rather than piling them up. */
    const tick = (first: boolean): void => {
      if (busy || closed) return
      busy = true
      void (async () => {
        // A session that ended (logout, revoked token, expiry) stops its stream.
        if (!first && await sessionOf(req) == null) end()
        else await push()
      })().catch((err: unknown) => {
        c.logger.warn({ err: String(err) }, 'console stream stopped: reading the catalog failed')
        end()
      }).finally(() => { busy = false })
    }
    const entry = { res, timer: setInterval(() => { tick(false) }, interval) }
    const end = (): void => {
      closed = true
      clearInterval(entry.timer)
      streams.delete(entry)
      res.end()
    }
    streams.add(entry)
    req.once('close', () => {
      closed = true
      clearInterval(entry.timer)
      streams.delete(entry)
    })
    tick(true)
  }

  async function handle (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname
    const method = req.method ?? ''
    const only = (...allowed: string[]): void => {
      if (allowed.includes(method)) return
      res.setHeader('allow', allowed.join(', '))
      throw new MethodNotAllowedError(`${method} is not allowed on ${path}`)
    }
    if (path === '/ui' || path === '/ui/') {
      only('GET', 'HEAD')
      if (await sessionOf(req) == null) send(req, res, 200, loginPage())
      else send(req, res, 200, consolePage(await consoleState(c, selectedOf(url))))
      return
    }
    if (path === '/ui/login') {
      only('POST')
      await login(req, res)
      return
    }
    if (path === '/ui/logout') {
      only('POST')
      logout(req, res)
      return
    }
    const asset = ASSET_PATH.exec(path)
    if (asset != null) {
      only('GET', 'HEAD')
      if (!sendAsset(res, assets, asset[1], method === 'HEAD')) throw new NotFoundError(`no asset ${path}`)
      return
    }
    if (path === '/ui/api/state') {
      only('GET')
      await requireSession(req)
      sendJson(res, 200, await consoleState(c, selectedOf(url)))
      return
    }
    if (path === '/ui/api/stream') {
      only('GET')
      await requireSession(req)
      stream(req, res, url)
      return
    }
    throw new NotFoundError(`no console page ${path}`)
  }

  return {
    handle,
    close () {
      for (const s of streams) {
        clearInterval(s.timer)
        s.res.end()
      }
      streams.clear()
    }
  }
}

/** A form post from another site (login CSRF, forced logout) is refused; browsers always send Origin on POST. */
function sameOrigin (req: IncomingMessage): void {
  const origin = req.headers.origin
  if (origin == null) return
  let host: string
  try {
    host = new URL(origin).host
  } catch {
    throw new ForbiddenError('malformed Origin header')
  }
  if (host !== req.headers.host) throw new ForbiddenError(`a form from ${origin} may not post to the console`)
}

async function readForm (req: IncomingMessage): Promise<URLSearchParams> {
  const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
  if (type !== 'application/x-www-form-urlencoded') throw new BadInputError('the login form is sent as application/x-www-form-urlencoded')
  const parts: Buffer[] = []
  let size = 0
  for await (const piece of req) {
    size += (piece as Buffer).length
    if (size > MAX_FORM_BYTES) throw new TooLargeError(`form over ${MAX_FORM_BYTES} bytes`)
    parts.push(piece as Buffer)
  }
  return new URLSearchParams(Buffer.concat(parts).toString('utf8'))
}

