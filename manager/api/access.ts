/**
 * Who may do what with a content (docs/PROTOCOLS.md, "Tokens and roles"):
 * pure decisions over a token's principal and a content's owner and
 * privacy, so the API and its tests share one statement of the rules.
 */
import type { Principal, Role } from '../catalog/tokens.ts'

/** Roles that may list contents, nodes and events. */
export const LIST_ROLES: readonly Role[] = ['admin', 'publisher', 'reader']
/** Roles that may publish. */
export const PUBLISH_ROLES: readonly Role[] = ['admin', 'publisher']
/** Roles that may even ask to delete or share a content (ownership is checked next). */
export const MANAGE_ROLES: readonly Role[] = ['admin', 'publisher']
/** Pool operations: nodes and tokens. */
export const ADMIN_ROLES: readonly Role[] = ['admin']

export interface ContentAccess {
  private: boolean
  /** id of the token that published it; null for contents from before owners were recorded */
  owner: string | null
}

/** Delete and share: an admin, or the publisher whose token published it. */
export function mayManage (content: ContentAccess, who: Principal): boolean {
  if (who.role === 'admin') return true
  return who.role === 'publisher' && content.owner != null && content.owner === who.id
}

/** A name and an upload session: an admin, or the token that owns it (the name's first publisher, the session's opener). */
export function mayUseOwned (owner: string, who: Principal): boolean {
  return who.role === 'admin' || owner === who.id
}

/** Resolving a private content without a capability: admins, readers, and its owner. */
export function mayReadPrivate (content: ContentAccess, who: Principal): boolean {
  return who.role === 'admin' || who.role === 'reader' || (who.role === 'publisher' && content.owner === who.id)
}

/** A listing shows public contents and the private ones the caller could resolve, so it never names what it would not open. */
export function mayList (content: ContentAccess, who: Principal): boolean {
  return !content.private || mayReadPrivate(content, who)
}
