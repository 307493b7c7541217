/**
 * Publisher and join tokens. Only their sha256 hashes are stored, so a copy of
 * the database does not let anyone publish or join; a presented token is
 * hashed and compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { BadInputError, UnauthorizedError } from '../core/errors.ts'
import type { Db } from './db.ts'

export type TokenKind = 'publisher' | 'join'

/** Longer tokens are refused before hashing: no legitimate token is this long. */
const MAX_TOKEN_CHARS = 1024

const SCHEMA = `
CREATE TABLE IF NOT EXISTS tokens (
  hash BLOB PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('publisher', 'join')),
  label TEXT NOT NULL
) STRICT;
`

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

export class TokenStore {
  private readonly insert
  private readonly ofKind

  constructor (db: Db) {
    db.exec(SCHEMA)
    this.insert = db.prepare('INSERT INTO tokens (hash, kind, label) VALUES (?, ?, ?) ON CONFLICT (hash) DO NOTHING')
    this.ofKind = db.prepare('SELECT hash, label FROM tokens WHERE kind = ?')
  }

  /**
   * Stores a token's hash. Registering the same token again is harmless. The
   * label (default: kind and the hash's first hex digits) names the holder in
   * manifests and events without revealing the token.
   */
  register (kind: TokenKind, token: string, label?: string): string {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS) {
      throw new BadInputError(`a ${kind} token must be 1 to ${MAX_TOKEN_CHARS} characters`)
    }
    const hash = hashToken(token)
    const name = label ?? `${kind}-${hash.subarray(0, 4).toString('hex')}`
    this.insert.run(hash, kind, name)
    return name
  }

  /** The label of a valid token of this kind, undefined otherwise. */
  verify (kind: TokenKind, token: string): string | undefined {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS) return undefined
    const hash = hashToken(token)
    let label: string | undefined
    // Every stored hash is compared, match or not, so timing says nothing about which one matched.
    for (const row of this.ofKind.all(kind) as Array<{ hash: Uint8Array, label: string }>) {
      if (row.hash.length === hash.length && timingSafeEqual(row.hash, hash)) label = row.label
    }
    return label
  }

  /** Checks a token or throws UnauthorizedError; returns the holder's label. */
  authenticate (kind: TokenKind, token: string): string {
    const label = this.verify(kind, token)
    if (label == null) throw new UnauthorizedError(`invalid ${kind} token`)
    return label
  }

  /** Checks an HTTP `Authorization: Bearer` header. */
  authenticateBearer (kind: TokenKind, header: string | string[] | undefined): string {
    return this.authenticate(kind, parseBearer(header))
  }
}
