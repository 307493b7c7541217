/**
 * `cdn token create | ls | revoke` (admin token) and `cdn share`: the CLI's
 * side of the manager's token and capability routes.
 */
import { BadInputError } from '../core/errors.ts'
import { parseContentId } from '../core/ids.ts'
import { callManager, type ApiOptions } from './manager-api.ts'
import { table } from './pool-commands.ts'
import { parseName } from '../core/names.ts'
import { isNameTarget } from './get.ts'

export interface CreatedToken { id: string, token: string, role: string, name: string, expiresAt: string | null }
export interface TokenRow { id: string, role: string, name: string, createdAt: string, expiresAt: string | null, revoked: boolean }

export async function createToken (api: ApiOptions, req: { role: string, name: string, ttlMs?: number }): Promise<CreatedToken> {
  const body: Record<string, unknown> = { role: req.role, name: req.name }
  if (req.ttlMs != null) body.ttlSeconds = Math.max(1, Math.ceil(req.ttlMs / 1000))
  const r = await callManager(api, 'POST', '/api/tokens', { data: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  return { id: String(r.id), token: String(r.token), role: String(r.role), name: String(r.name), expiresAt: r.expiresAt ?? null }
}

export function formatCreatedToken (t: CreatedToken): string {
  return [
    `id:      ${t.id}`,
    `role:    ${t.role}`,
    `name:    ${t.name}`,
    `expires: ${t.expiresAt ?? 'never'}`,
    `token:   ${t.token}`,
    '',
    'The token is shown only this once. Keep it in a file readable by you only and pass',
    'it with --token-file FILE (or CDN_TOKEN); revoke it with cdn token revoke ' + t.id + '.'
  ].join('\n')
}

export async function listTokens (api: ApiOptions): Promise<{ tokens: TokenRow[] }> {
  return await callManager(api, 'GET', '/api/tokens')
}

export function formatTokens (res: { tokens: TokenRow[] }, now = Date.now()): string {
  const state = (t: TokenRow): string => t.revoked ? 'revoked' : t.expiresAt != null && Date.parse(t.expiresAt) <= now ? 'expired' : 'active'
  const rows = res.tokens.map(t => [t.id, t.role, t.name, t.createdAt, t.expiresAt ?? 'never', state(t)])
  return rows.length === 0 ? 'no tokens' : table(['ID', 'ROLE', 'NAME', 'CREATED', 'EXPIRES', 'STATE'], rows)
}

export async function revokeToken (api: ApiOptions, id: string): Promise<{ id: string, revoked: boolean }> {
  if (!/^[0-9a-f]{12}$/.test(id)) throw new BadInputError(`"${id}" is not a token id (12 hex characters, see cdn token ls)`)
  const r = await callManager(api, 'DELETE', `/api/tokens/${id}`)
  return { id: String(r.id), revoked: r.revoked === true }
}

export interface ShareResult { id: string, link: string, url: string, expiresAt: string | null }

/**
 * A capability link for a content (owner or admin), or with `keyLink` the
 * bearer key link `cdn://<id>?k=<key>`, got by resolving with the caller's token.
 */
export async function share (api: ApiOptions, target: string, o: { proxy: string, ttlMs?: number, keyLink?: boolean }): Promise<ShareResult> {
  if (isNameTarget(target)) return await shareName(api, parseName(target), o)
  const id = parseContentId(target).toString()
  if (o.keyLink === true) {
    if (o.ttlMs != null) throw new BadInputError('a key link never expires: --ttl does not apply to --key-link')
    const r = await callManager(api, 'GET', `/api/contents/${id}`)
    const key = String(r.key)
    return { id, link: `cdn://${id}?k=${key}`, url: gatewayUrl(o.proxy, id, 'k', key), expiresAt: null }
  }
  const body = o.ttlMs != null ? JSON.stringify({ ttlSeconds: Math.max(1, Math.ceil(o.ttlMs / 1000)) }) : '{}'
  const r = await callManager(api, 'POST', `/api/contents/${id}/share`, { data: body, headers: { 'content-type': 'application/json' } })
  const cap = String(r.capability)
  return { id, link: `cdn://${id}?cap=${cap}`, url: gatewayUrl(o.proxy, id, 'cap', cap), expiresAt: String(r.expiresAt) }
}

/** A capability for a name: it opens every generation, those published later included (owner or admin). */
async function shareName (api: ApiOptions, name: string, o: { proxy: string, ttlMs?: number, keyLink?: boolean }): Promise<ShareResult> {
  if (o.keyLink === true) throw new BadInputError('a key link opens one content: share a name with a capability (no --key-link), or a generation by its id')
  const body = o.ttlMs != null ? JSON.stringify({ ttlSeconds: Math.max(1, Math.ceil(o.ttlMs / 1000)) }) : '{}'
  const r = await callManager(api, 'POST', `/api/names/${encodeURIComponent(name)}/share`, { data: body, headers: { 'content-type': 'application/json' } })
  const cap = String(r.capability)
  const url = new URL(`/n/${name}`, o.proxy)
  url.searchParams.set('cap', cap)
  // Names have no cdn:// link form: the proxy URL is the link.
  return { id: name, link: url.toString(), url: url.toString(), expiresAt: String(r.expiresAt) }
}

function gatewayUrl (proxy: string, id: string, param: string, value: string): string {
  const url = new URL(`/c/${id}`, proxy)
  url.searchParams.set(param, value)
  return url.toString()
}
