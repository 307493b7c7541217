/** `cdn versions` and the name side of `cdn get`: a name's generations, and which one `--at` picks. */
import { BadInputError, NotFoundError } from '../core/errors.ts'
import { callManager, type ApiOptions } from './manager-api.ts'

export interface Generation { seq: number, content: string, createdAt: string, size: number, added: number }
export interface Versions { name: string, keep: number | null, generations: Generation[] }

export async function versions (api: ApiOptions, name: string): Promise<Versions> {
  const r = await callManager(api, 'GET', `/api/names/${encodeURIComponent(name)}/generations`)
  return { name: String(r.name), keep: r.keep == null ? null : Number(r.keep), generations: Array.isArray(r.generations) ? r.generations : [] }
}

export function formatVersions (v: Versions): string {
  const rows = v.generations.map(g => `${String(g.seq).padStart(5)}  ${g.createdAt}  ${String(g.size).padStart(14)}  ${String(g.added).padStart(14)}  ${g.content}`)
  const keep = v.keep == null ? 'all generations kept' : `the newest ${v.keep} kept`
  return [`${v.name}: ${v.generations.length} generations, ${keep}`, '  seq  created                             bytes           added  content', ...rows].join('\n')
}

/**
 * The generation `--at` names: a sequence number, or an ISO time (the
 * newest generation created at or before it).
 */
export function pickGeneration (list: Generation[], at: string): Generation {
  if (/^\d+$/.test(at)) {
    const g = list.find(x => x.seq === Number(at))
    if (g == null) throw new NotFoundError(`no generation ${at} (kept: ${list.map(x => x.seq).join(', ') || 'none'})`)
    return g
  }
  const t = Date.parse(at)
  if (!Number.isFinite(t) || !/^\d{4}-\d{2}-\d{2}/.test(at)) throw new BadInputError(`--at takes a generation number or an ISO time (2026-12-01T10:00:00Z), got "${at.slice(0, 40)}"`)
  const before = list.filter(x => Date.parse(x.createdAt) <= t)
  if (before.length === 0) throw new NotFoundError(`no generation kept was published at or before ${new Date(t).toISOString()}`)
  return before[before.length - 1]
}
