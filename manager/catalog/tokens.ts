/**
 * Tokens with a role and a lifetime. Only their sha256 hashes are stored, so
 * a copy of the database lets nobody in. Every token has a public id (what
 * `cdn token ls`, listings and events show), a name chosen by whoever made
 * it, an optional expiry, and can be revoked: an expired or revoked token is
 * refused (401) on its very next request.
 *
 * Roles (docs/PROTOCOLS.md): `admin` may do everything; `publisher`
 * publishes and shares or deletes its own contents; `reader` lists and
 * resolves private contents; `join` registers nodes over the control protocol.
 */
import { createHash, randomBytes } from 'node:crypto'
import { BadInputError, ConflictError, ForbiddenError, NotFoundError, UnauthorizedError } from '../../core/errors.ts'
import type { SqlEngine } from './engine.ts'
import type { NewEvent } from './types.ts'

/** Who changed a token, for the event that records the change. */
export interface TokenChange { by: string, now?: number }

export type Role = 'admin' | 'publisher' | 'reader' | 'join'
export const ROLES: readonly Role[] = ['admin', 'publisher', 'reader', 'join']
/** The role a token presented for a purpose must have (the control protocol's join asks for `join`). */
export type TokenKind = Role

/** Longer tokens are refused before hashing: no legitimate token is this long. */
const MAX_TOKEN_CHARS = 1024
const MAX_NAME_CHARS = 100
/** A token may live at most this long; beyond, a TTL is a typo. */
export const MAX_TOKEN_TTL_SECONDS = 100 * 365 * 86_400

/** What anyone with the right to see tokens may know of one: never the token or its hash. */
export interface TokenInfo {
  /** public id, 12 hex characters */
  id: string
  role: Role
  name: string
  /** ms since the epoch */
  createdAt: number
  expiresAt: number | null
  revokedAt: number | null
}

/** Who a request comes from, once its token is checked. */
export interface Principal {
  id: string
  role: Role
  name: string
}

/** A random public id; schema.ts makes the same shape for rows of the first tokens table. */
function newId (): string {
  return randomBytes(6).toString('hex')
}

/** A new random token. The prefix lets secret scanners recognise one that leaked. */
export function newToken (): string {
  return `cdn_${randomBytes(24).toString('base64url')}`
}

export function hashToken (token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

/** Extracts the token of an `Authorization: Bearer <token>` header; anything else is a 401. */
export function parseBearer (header: string | string[] | undefined): string {
  if (typeof header !== 'string') throw new UnauthorizedError('missing authorization: expected "Bearer <token>"')
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
  if (m == null) throw new UnauthorizedError('malformed authorization: expected "Bearer <token>"')
  return m[1]
}

export function checkRole (v: unknown): Role {
  if (typeof v !== 'string' || !(ROLES as readonly string[]).includes(v)) throw new BadInputError(`role must be one of ${ROLES.join(', ')}`)
  return v as Role
}

export function checkTokenName (v: unknown): string {
  // Names show in terminals: no control characters.
  if (typeof v !== 'string' || v.trim().length === 0 || v.length > MAX_NAME_CHARS || /[\u0000-\u001f\u007f]/.test(v)) { // eslint-disable-line no-control-regex
    throw new BadInputError(`a token name must be 1 to ${MAX_NAME_CHARS} printable characters`)
  }
  return v.trim()
}

function tokenInfo (r: any): TokenInfo {
  return { id: r.id, role: r.role, name: r.name, createdAt: r.created_at, expiresAt: r.expires_at ?? null, revokedAt: r.revoked_at ?? null }
}

function usable (token: unknown): token is string {
  return typeof token === 'string' && token.length > 0 && token.length <= MAX_TOKEN_CHARS
}

export class TokenStore {
  private readonly s
  private readonly db: SqlEngine
  private readonly record: (e: NewEvent) => void | Promise<void>

  /** `record` writes an event row (the catalog's); token changes record theirs in their own transaction. */
  constructor (db: SqlEngine, record: (e: NewEvent) => void | Promise<void>) {
    this.db = db
    this.record = record
    this.s = {
      insert: db.prepare(`INSERT INTO tokens (id, hash, role, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (hash) DO NOTHING`),
      byHash: db.prepare('SELECT * FROM tokens WHERE hash = ?'),
      byId: db.prepare('SELECT * FROM tokens WHERE id = ?'),
      list: db.prepare('SELECT * FROM tokens ORDER BY created_at, id'),
      revoke: db.prepare('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      liveAdmins: db.prepare("SELECT COUNT(*) AS n FROM tokens WHERE role = 'admin' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"),
      anyAdmin: db.prepare("SELECT 1 FROM tokens WHERE role = 'admin' LIMIT 1")
    }
  }

  /**
   * Stores a token given by the operator (a token file or the environment).
   * Registering the same token again changes nothing, not even a revocation:
   * a revoked token stays revoked. Returns the token as stored.
   */
  async register (role: Role, token: string, name?: string): Promise<TokenInfo> {
    if (!usable(token)) throw new BadInputError(`a ${role} token must be 1 to ${MAX_TOKEN_CHARS} characters`)
    const hash = hashToken(token)
    // The default name is the label the first release gave such tokens, so old events still match it.
    await this.s.insert.run(newId(), hash, checkRole(role), name ?? `${role}-${hash.subarray(0, 4).toString('hex')}`, Date.now(), null)
    return tokenInfo(await this.s.byHash.get(hash))
  }

  /** Makes a new random token; the only time it is ever seen in clear is this return value. */
  async create (req: { role: Role, name: string, ttlSeconds?: number }, change: TokenChange = { by: 'operator' }): Promise<{ token: string, info: TokenInfo }> {
    const now = change.now ?? Date.now()
    const role = checkRole(req.role)
    const name = checkTokenName(req.name)
    if (req.ttlSeconds != null && (!Number.isSafeInteger(req.ttlSeconds) || req.ttlSeconds < 1 || req.ttlSeconds > MAX_TOKEN_TTL_SECONDS)) {
      throw new BadInputError(`ttlSeconds must be an integer from 1 to ${MAX_TOKEN_TTL_SECONDS}`)
    }
    const token = newToken()
    const id = newId()
    const info = await this.db.transaction(async () => {
      await this.s.insert.run(id, hashToken(token), role, name, now, req.ttlSeconds != null ? now + req.ttlSeconds * 1000 : null)
      await this.record({ kind: 'token-created', detail: { id, role, by: change.by } })
      return tokenInfo(await this.s.byId.get(id))
    })
    return { token, info }
  }

  async list (): Promise<TokenInfo[]> {
    return (await this.s.list.all()).map(tokenInfo)
  }

  async get (id: string): Promise<TokenInfo | undefined> {
    const r = await this.s.byId.get(id)
    return r == null ? undefined : tokenInfo(r)
  }

  /**
   * Revokes a token for good; revoking it again changes nothing. The last
   * admin token that still works cannot be revoked: nobody could manage the
   * pool any more.
   */
  async revoke (id: string, change: TokenChange = { by: 'operator' }): Promise<TokenInfo> {
    const now = change.now ?? Date.now()
    return this.db.transaction(async () => this.revokeNow(id, now, change.by))
  }

  private async revokeNow (id: string, now: number, by: string): Promise<TokenInfo> {
    const t = await this.get(id)
    if (t == null) throw new NotFoundError(`no token ${id}`)
    if (t.revokedAt != null) return t
    if (t.role === 'admin' && (t.expiresAt == null || t.expiresAt > now) && Number((await this.s.liveAdmins.get(now) as { n: number }).n) <= 1) {
      throw new ConflictError('this is the last admin token that works: create another admin token before revoking it')
    }
    await this.s.revoke.run(now, id)
    await this.record({ kind: 'token-revoked', detail: { id, role: t.role, by } })
    return (await this.get(id))!
  }

  /** True once any admin token was ever made (revoked or not): the first start makes one. */
  async hasAdmin (): Promise<boolean> {
    return (await this.s.anyAdmin.get()) != null
  }

  /**
   * Who holds this token. Unknown, expired and revoked tokens are all 401. The
   * lookup is by the token's sha256 through an index: timing can tell an
   * attacker at most how a hash they cannot invert compares to stored ones.
   */
  async identify (token: unknown, now = Date.now()): Promise<Principal> {
    if (!usable(token)) throw new UnauthorizedError('invalid token')
    const r = await this.s.byHash.get(hashToken(token))
    if (r == null) throw new UnauthorizedError('invalid token')
    const t = tokenInfo(r)
    if (t.revokedAt != null) throw new UnauthorizedError(`token ${t.id} was revoked`)
    if (t.expiresAt != null && t.expiresAt <= now) throw new UnauthorizedError(`token ${t.id} expired at ${new Date(t.expiresAt).toISOString()}`)
    return { id: t.id, role: t.role, name: t.name }
  }

  /**
   * Checks an `Authorization: Bearer` header and that its token has one of
   * `roles`: none or a bad one is 401, a good one of another role is 403.
   */
  async authorize (header: string | string[] | undefined, roles: readonly Role[], now = Date.now()): Promise<Principal> {
    const who = await this.identify(parseBearer(header), now)
    if (!roles.includes(who.role)) throw new ForbiddenError(`a ${who.role} token may not do this (needs ${roles.join(' or ')})`)
    return who
  }

  /** The id of a usable token of exactly this role, undefined otherwise. */
  async verify (role: Role, token: string, now = Date.now()): Promise<string | undefined> {
    try {
      const who = await this.identify(token, now)
      return who.role === role ? who.id : undefined
    } catch (err) {
      if (err instanceof UnauthorizedError) return undefined
      throw err
    }
  }

  /** Checks a token of exactly this role (the control protocol's join) or throws UnauthorizedError; returns its id. */
  async authenticate (role: Role, token: string): Promise<string> {
    const id = await this.verify(role, token)
    if (id == null) throw new UnauthorizedError(`invalid ${role} token`)
    return id
  }

  /** Checks an HTTP `Authorization: Bearer` header for a token of exactly this role (401 otherwise). */
  async authenticateBearer (role: Role, header: string | string[] | undefined): Promise<string> {
    return this.authenticate(role, parseBearer(header))
  }
}
