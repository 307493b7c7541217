/**
 * Small statements signed by the pool's identity (an Ed25519 key its managers
 * share, `pool.key`): capabilities that name a content, the list of nodes a
 * proxy may fetch from, the list of managers a node may obey, and where a
 * name points. Each carries a kind and an expiry, and the kind is part of
 * what is signed, so a statement of one kind can never be replayed as another.
 *
 * Encoding: `base64url(JSON body) "." base64url(signature)`, short enough for
 * a URL query (`?cap=`) and a header.
 */
import type { PrivateKey } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { BadInputError, ForbiddenError } from './errors.ts'

const DOMAIN = 'cdn-signed-record:v1:'
/** Refused before decoding: no legitimate record is this long (a node list of thousands of nodes fits). */
export const MAX_RECORD_CHARS = 4 * 1024 * 1024

export interface RecordBody {
  /** what the record is: 'capability', 'node-list', ... */
  kind: string
  /** the signer's peer id */
  iss: string
  /** issued at, ms since the epoch */
  iat: number
  /** expires at, ms since the epoch */
  exp: number
}

export interface VerifiedRecord<T extends RecordBody> {
  body: T
  /** the encoded record, as received */
  encoded: string
}

function signedBytes (bodyJson: string): Uint8Array {
  return Buffer.from(DOMAIN + bodyJson, 'utf8')
}

/** Signs `body` (its `iss` must be the key's peer id) and returns the encoded record. */
export async function signRecord (body: RecordBody, key: PrivateKey): Promise<string> {
  const json = JSON.stringify(body)
  const sig = await key.sign(signedBytes(json))
  return `${Buffer.from(json, 'utf8').toString('base64url')}.${Buffer.from(sig).toString('base64url')}`
}

export interface VerifyOptions {
  /** the record's kind must be this */
  kind: string
  /** peer ids whose signature is accepted */
  trusted: string[]
  /** for tests; default Date.now() */
  now?: number
}

/**
 * Decodes and checks a record: shape, kind, issuer among `trusted`, signature,
 * expiry. Malformed input is a BadInputError (400), a bad signature a
 * forged, expired or foreign record a ForbiddenError (403): the bearer, not
 * the pool, is at fault.
 */
export async function verifyRecord<T extends RecordBody> (encoded: unknown, opts: VerifyOptions): Promise<VerifiedRecord<T>> {
  if (typeof encoded !== 'string' || encoded.length === 0 || encoded.length > MAX_RECORD_CHARS) throw new BadInputError(`a ${opts.kind} must be a non-empty string`)
  const m = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(encoded)
  if (m == null) throw new BadInputError(`malformed ${opts.kind}`)
  const json = Buffer.from(m[1], 'base64url').toString('utf8')
  let body: Record<string, unknown>
  try {
    body = JSON.parse(json)
  } catch (err) {
    throw new BadInputError(`malformed ${opts.kind}`, { cause: err })
  }
  if (body == null || typeof body !== 'object' || typeof body.kind !== 'string' || typeof body.iss !== 'string' ||
      typeof body.iat !== 'number' || typeof body.exp !== 'number') {
    throw new BadInputError(`malformed ${opts.kind}`)
  }
  if (body.kind !== opts.kind) throw new ForbiddenError(`expected a ${opts.kind}, got a ${body.kind.slice(0, 40)}`)
  if (!opts.trusted.includes(body.iss)) throw new ForbiddenError(`${opts.kind} issued by ${body.iss.slice(0, 80)}, which this pool does not trust`)
  let ok = false
  try {
    const pub = peerIdFromString(body.iss).publicKey
    if (pub != null) ok = await pub.verify(signedBytes(json), Buffer.from(m[2], 'base64url'))
  } catch (err) {
    throw new ForbiddenError(`${opts.kind} signature could not be checked`, { cause: err })
  }
  if (!ok) throw new ForbiddenError(`${opts.kind} signature is not valid`)
  if (body.exp <= (opts.now ?? Date.now())) throw new ForbiddenError(`${opts.kind} expired at ${new Date(body.exp).toISOString()}`)
  return { body: body as unknown as T, encoded }
}

/** A capability: the bearer may resolve this one content until `exp`. */
export interface CapabilityBody extends RecordBody {
  kind: 'capability'
  /** the content id it opens */
  content: string
}

/**
 * A capability for a name: the bearer may resolve every generation of this
 * name, the ones published later included, until `exp`.
 */
export interface NameCapabilityBody extends RecordBody {
  kind: 'name-capability'
  name: string
}

/**
 * The kind a record says it is, unverified: only to pick which kind to verify
 * it as (the kind is signed, so a lie fails the verification that follows).
 */
export function claimedKind (encoded: unknown): string | undefined {
  if (typeof encoded !== 'string' || encoded.length > MAX_RECORD_CHARS) return undefined
  const dot = encoded.indexOf('.')
  if (dot <= 0) return undefined
  try {
    const body = JSON.parse(Buffer.from(encoded.slice(0, dot), 'base64url').toString('utf8')) as { kind?: unknown }
    return typeof body?.kind === 'string' ? body.kind : undefined
  } catch {
    return undefined
  }
}

/** The nodes a proxy may fetch from, as the pool vouches for them. */
export interface NodeListBody extends RecordBody {
  kind: 'node-list'
  /** increases with every list the issuer signs; a proxy keeps the highest */
  seq: number
  nodes: Array<{ peerId: string, http: string }>
}

/** One manager of the pool, as a node reaches it. */
export interface ListedManager {
  /** its libp2p peer id (noise proves it on every control stream) */
  peerId: string
  /** its libp2p addresses, each ending in /p2p/<peerId> */
  multiaddrs: string[]
  /** its HTTP API base URL */
  http: string
}

/**
 * The managers a node may obey and heartbeat to, as the pool vouches for
 * them. A node keeps the highest `seq` it verified; the sequence comes from
 * the shared catalog, so it grows whichever manager signed.
 */
export interface ManagerListBody extends RecordBody {
  kind: 'manager-list'
  seq: number
  managers: ListedManager[]
}

/**
 * Where a name of the pool points: its newest generation. A proxy keeps the
 * highest `seq` it verified per name and never goes back to a lower one.
 */
export interface NameRecordBody extends RecordBody {
  kind: 'name-record'
  name: string
  /** the generation's number: grows by one with every publish under the name */
  seq: number
  /** the generation's content id */
  content: string
}
