/**
 * Capabilities: signed, expiring statements "the bearer may resolve content
 * X until T", issued by the manager under the pool's identity (its libp2p
 * key) and checked by it when presented (`x-cdn-capability`). Like a
 * Tahoe-LAFS read cap or a Storj macaroon, a capability is the authority
 * itself: nothing is stored, so any manager holding the key can check one.
 * One cannot be revoked before it expires, except by deleting the content
 * (or rotating the pool's key), so lifetimes are bounded.
 */
import type { PrivateKey } from '@libp2p/interface'
import { BadInputError, ForbiddenError } from '../../core/errors.ts'
import { claimedKind, signRecord, verifyRecord, type CapabilityBody, type NameCapabilityBody } from '../../core/signed-record.ts'

export const DEFAULT_CAPABILITY_TTL_SECONDS = 24 * 3600
/** A year at most: a capability cannot be taken back, so it must end. */
export const MAX_CAPABILITY_TTL_SECONDS = 365 * 24 * 3600

export interface CapabilitiesComponents {
  /** the pool's identity: signs and is the only trusted issuer */
  signer: { privateKey: PrivateKey, peerId: string }
  /** ms since the epoch; injectable for expiry tests */
  now?: () => number
}

export interface IssuedCapability {
  content: string
  capability: string
  /** ms since the epoch */
  expiresAt: number
}

function checkTtl (ttlSeconds: number): void {
  if (!Number.isSafeInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_CAPABILITY_TTL_SECONDS) {
    throw new BadInputError(`ttlSeconds must be an integer from 1 to ${MAX_CAPABILITY_TTL_SECONDS}`)
  }
}

export class Capabilities {
  private readonly c: CapabilitiesComponents
  private readonly now: () => number

  constructor (components: CapabilitiesComponents) {
    this.c = components
    this.now = components.now ?? Date.now
  }

  /** A capability for `content` valid `ttlSeconds` (default 24 h, at most a year). */
  async issue (content: string, ttlSeconds = DEFAULT_CAPABILITY_TTL_SECONDS): Promise<IssuedCapability> {
    checkTtl(ttlSeconds)
    const iat = this.now()
    const body: CapabilityBody = { kind: 'capability', iss: this.c.signer.peerId, iat, exp: iat + ttlSeconds * 1000, content }
    return { content, capability: await signRecord(body, this.c.signer.privateKey), expiresAt: body.exp }
  }

  /** A capability for every generation of `name`, those published later included. */
  async issueForName (name: string, ttlSeconds = DEFAULT_CAPABILITY_TTL_SECONDS): Promise<{ name: string, capability: string, expiresAt: number }> {
    checkTtl(ttlSeconds)
    const iat = this.now()
    const body: NameCapabilityBody = { kind: 'name-capability', iss: this.c.signer.peerId, iat, exp: iat + ttlSeconds * 1000, name }
    return { name, capability: await signRecord(body, this.c.signer.privateKey), expiresAt: body.exp }
  }

  /**
   * Checks a presented capability against the content it is used for: one
   * naming that content, or one naming a name the content is a generation
   * of (`namesOf`). Malformed is 400; forged, foreign, expired or naming
   * something else is 403.
   */
  async check (encoded: unknown, content: string): Promise<CapabilityBody>
  async check (encoded: unknown, content: string, namesOf: () => Promise<string[]>): Promise<CapabilityBody | NameCapabilityBody>
  async check (encoded: unknown, content: string, namesOf?: () => Promise<string[]>): Promise<CapabilityBody | NameCapabilityBody> {
    const trusted = [this.c.signer.peerId]
    if (claimedKind(encoded) === 'name-capability' && namesOf != null) {
      const { body } = await verifyRecord<NameCapabilityBody>(encoded, { kind: 'name-capability', trusted, now: this.now() })
      if (!(await namesOf()).includes(body.name)) throw new ForbiddenError('this capability is for a name this content is no generation of')
      return body
    }
    const { body } = await verifyRecord<CapabilityBody>(encoded, { kind: 'capability', trusted, now: this.now() })
    if (body.content !== content) throw new ForbiddenError('this capability is for another content')
    return body
  }
}
