import { parseContentId } from '../core/ids.ts'
import { formatBytes } from '../core/units.ts'
import { callManager, type ApiOptions } from './manager-api.ts'

/** Renders rows as an aligned text table for terminals. */
export function table (headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}

/** Shortest suffixes (8 characters at least) that tell these peer ids apart: what `cdn node drain/rm` take back as they are. */
export function shortPeerIds (ids: string[]): Map<string, string> {
  const unique = [...new Set(ids)]
  const out = new Map<string, string>()
  for (const id of unique) {
    let n = Math.min(8, id.length)
    while (n < id.length && unique.some(other => other !== id && other.endsWith(id.slice(-n)))) n++
    out.set(id, id.slice(-n))
  }
  return out
}

export async function listContents (api: ApiOptions): Promise<any> {
  return callManager(api, 'GET', '/api/contents')
}

export function formatContents (res: any): string {
  const rows = (res.contents as any[]).map(c => [c.id, c.name, formatBytes(c.size), String(c.chunks), `${c.copies.min}-${c.copies.max}`, String(c.copies.nodes.length), c.private === true ? 'private' : 'public'])
  return rows.length === 0 ? 'no contents' : table(['ID', 'NAME', 'SIZE', 'CHUNKS', 'COPIES', 'NODES', 'ACCESS'], rows)
}

export async function removeContent (api: ApiOptions, id: string): Promise<any> {
  parseContentId(id)
  return callManager(api, 'DELETE', `/api/contents/${id}`)
}

export async function poolStatus (api: ApiOptions): Promise<any> {
  const [nodes, health, info] = await Promise.all([callManager(api, 'GET', '/api/nodes'), callManager(api, 'GET', '/api/health/replication'), callManager(api, 'GET', '/api/info')])
  // Repair the manager cannot do (too few nodes, full disks, one zone), one line each.
  return { ...nodes, repairBlocked: health.repairBlocked ?? [], managers: info.managers ?? [info.http], controller: health.controller?.holder ?? null }
}

function percent (part: number, whole: number | null | undefined): string {
  return whole != null && whole > 0 && Number.isFinite(whole) ? ` (${Math.round(100 * part / whole)}%)` : ''
}

export function formatStatus (res: any): string {
  const short = shortPeerIds((res.nodes as any[]).map(n => String(n.peerId)))
  const rows = (res.nodes as any[]).map(n => [
    short.get(n.peerId) ?? n.peerId, n.state, n.zone ?? '-',
    `${formatBytes(n.used)} / ${formatBytes(n.capacity)}${percent(n.used, n.capacity)}`,
    `${formatBytes(n.egressRate ?? 0)}/s / ${n.egressCap == null ? 'unlimited' : `${formatBytes(n.egressCap)}/s`}${percent(n.egressRate ?? 0, n.egressCap)}`,
    String(n.contents ?? 0), String(n.copies ?? n.blobs ?? 0), n.health ?? '-', n.http
  ])
  const nodes = rows.length === 0 ? 'no nodes' : table(['PEER', 'STATE', 'ZONE', 'USED/CAPACITY', 'EGRESS/CAP', 'CONTENTS', 'COPIES', 'HEALTH', 'HTTP'], rows)
  const blocked = (res.repairBlocked ?? []) as Array<{ message: string }>
  const managers = (res.managers ?? []) as string[]
  // Only worth a line when the pool has several managers: which one repairs, and whom to ask.
  const pool = managers.length > 1 ? `\n\nmanagers: ${managers.join(' ')}; the controller runs on ${res.controller?.http ?? res.controller?.peerId ?? 'none (lease free)'}` : ''
  return (blocked.length === 0 ? nodes : `${nodes}\n\nrepair blocked:\n${blocked.map(b => `  ${b.message}`).join('\n')}`) + pool
}

export async function listEvents (api: ApiOptions, limit: number): Promise<any> {
  return callManager(api, 'GET', `/api/events?limit=${limit}`)
}

export function formatEvents (res: any): string {
  const short = shortPeerIds((res.events as any[]).filter(e => e.node != null).map(e => String(e.node)))
  const rows = (res.events as any[]).map(e => [
    new Date(e.at).toISOString(), e.kind, e.content ?? '-', e.node != null ? short.get(e.node) ?? e.node : '-',
    e.detail == null ? '' : JSON.stringify(e.detail)
  ])
  return rows.length === 0 ? 'no events' : table(['AT', 'KIND', 'CONTENT', 'NODE', 'DETAIL'], rows)
}
