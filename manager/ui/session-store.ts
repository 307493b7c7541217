/**
 * The console's sessions: an operator logs in once with an admin token and
 * gets a random session id in a cookie. The token itself is never kept in
 * the cookie or anywhere here; the session remembers only the token's id, so
 * revoking the token ends its sessions too (checked on every request).
 */
import { randomBytes } from 'node:crypto'

export interface Session {
  id: string
  /** id of the admin token that opened it (never the token) */
  tokenId: string
  createdAt: number
  expiresAt: number
}

export interface SessionStoreInit {
  /** ms a session lasts from login (default 8 h) */
  ttlMs?: number
  /** sessions held at most; the oldest goes first beyond it (default 1000) */
  maxSessions?: number
  now?: () => number
}

export const SESSION_COOKIE = 'cdn_console'

/** 32 random bytes, base64url: what a session id looks like (43 characters). */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/

export class SessionStore {
  private readonly sessions = new Map<string, Session>()
  readonly ttlMs: number
  private readonly maxSessions: number
  private readonly now: () => number

  constructor (init: SessionStoreInit = {}) {
    this.ttlMs = init.ttlMs ?? 8 * 3600_000
    this.maxSessions = init.maxSessions ?? 1000
    this.now = init.now ?? Date.now
  }

  create (tokenId: string): Session {
    const now = this.now()
    this.sweep(now)
    while (this.sessions.size >= this.maxSessions) this.sessions.delete(this.sessions.keys().next().value!)
    const s: Session = { id: randomBytes(32).toString('base64url'), tokenId, createdAt: now, expiresAt: now + this.ttlMs }
    this.sessions.set(s.id, s)
    return s
  }

  /** The live session of that id; an expired one is forgotten. */
  get (id: string | undefined): Session | undefined {
    if (id == null || !SESSION_ID.test(id)) return undefined
    const s = this.sessions.get(id)
    if (s == null) return undefined
    if (s.expiresAt <= this.now()) {
      this.sessions.delete(id)
      return undefined
    }
    return s
  }

  delete (id: string | undefined): void {
    if (id != null) this.sessions.delete(id)
  }

  get size (): number {
    return this.sessions.size
  }

  private sweep (now: number): void {
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id)
  }
}

/** The Set-Cookie value for a session: only sent back to /ui, invisible to scripts, never on cross-site requests. */
export function sessionCookie (id: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/ui; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`
}

/** One cookie's value from a Cookie header. */
export function readCookie (header: string | undefined, name: string): string | undefined {
  if (header == null) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}
