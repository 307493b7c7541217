/**
 * Every failure the CDN reports is a CdnError with a stable `code`, so callers
 * branch on codes (and HTTP layers map them to statuses) instead of matching
 * on messages.
 */
export class CdnError extends Error {
  readonly code: string
  /** HTTP status an API should answer with when this error reaches a client. */
  readonly status: number
  /** more for a client to act on, sent beside code and message (e.g. which chunks are missing) */
  details?: Record<string, unknown>

  constructor (message: string, code: string, status = 500, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.status = status
  }
}

export class BadInputError extends CdnError {
  constructor (message = 'bad input', options?: ErrorOptions) { super(message, 'ERR_BAD_INPUT', 400, options) }
}

export class UnauthorizedError extends CdnError {
  constructor (message = 'missing or invalid token', options?: ErrorOptions) { super(message, 'ERR_UNAUTHORIZED', 401, options) }
}

export class ForbiddenError extends CdnError {
  constructor (message = 'forbidden', options?: ErrorOptions) { super(message, 'ERR_FORBIDDEN', 403, options) }
}

export class NotFoundError extends CdnError {
  constructor (message = 'not found', options?: ErrorOptions) { super(message, 'ERR_NOT_FOUND', 404, options) }
}

export class TooLargeError extends CdnError {
  constructor (message = 'too large', options?: ErrorOptions) { super(message, 'ERR_TOO_LARGE', 413, options) }
}

export class RangeNotSatisfiableError extends CdnError {
  constructor (message = 'range not satisfiable', options?: ErrorOptions) { super(message, 'ERR_RANGE_NOT_SATISFIABLE', 416, options) }
}

export class CapacityError extends CdnError {
  constructor (message = 'not enough space', options?: ErrorOptions) { super(message, 'ERR_CAPACITY', 507, options) }
}

export class HashMismatchError extends CdnError {
  constructor (message = 'content does not match its id', options?: ErrorOptions) { super(message, 'ERR_HASH_MISMATCH', 502, options) }
}

export class DecryptError extends CdnError {
  constructor (message = 'decryption failed: wrong key or tampered data', options?: ErrorOptions) { super(message, 'ERR_DECRYPT', 502, options) }
}

export class SignatureError extends CdnError {
  constructor (message = 'manifest signature is invalid', options?: ErrorOptions) { super(message, 'ERR_SIGNATURE', 502, options) }
}

export class NoSourceError extends CdnError {
  constructor (message = 'no source can serve this chunk', options?: ErrorOptions) { super(message, 'ERR_NO_SOURCE', 502, options) }
}

export class UpstreamError extends CdnError {
  constructor (message = 'upstream request failed', options?: ErrorOptions) { super(message, 'ERR_UPSTREAM', 502, options) }
}

export class ProtocolError extends CdnError {
  constructor (message = 'protocol violation', options?: ErrorOptions) { super(message, 'ERR_PROTOCOL', 400, options) }
}

export class TimeoutError extends CdnError {
  constructor (message = 'timed out', options?: ErrorOptions) { super(message, 'ERR_TIMEOUT', 504, options) }
}

export class MethodNotAllowedError extends CdnError {
  constructor (message = 'method not allowed', options?: ErrorOptions) { super(message, 'ERR_METHOD_NOT_ALLOWED', 405, options) }
}

export class UnavailableError extends CdnError {
  constructor (message = 'shutting down', options?: ErrorOptions) { super(message, 'ERR_SHUTTING_DOWN', 503, options) }
}

/** The operation was given up on purpose: the user pressed Ctrl-C, or the client it served went away. */
export class InterruptedError extends CdnError {
  constructor (message = 'interrupted', options?: ErrorOptions) { super(message, 'ERR_INTERRUPTED', 499, options) }
}

/** A differential upload's commit found chunks not yet stored: `details.missing` lists their indexes. */
export class MissingChunksError extends CdnError {
  constructor (missing: number[]) {
    super(`${missing.length} chunks are not stored yet (first: ${missing[0]}): send them, then commit again`, 'ERR_MISSING_CHUNKS', 409)
    this.details = { missing }
  }
}

export class ConflictError extends CdnError {
  constructor (message = 'conflict', options?: ErrorOptions) { super(message, 'ERR_CONFLICT', 409, options) }
}

/** Turns anything thrown into a one-line message fit for a terminal or a log. */
export function describeError (err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : ''
    return `${err.message}${cause}`
  }
  return String(err)
}
