/**
 * Names and their generations: a stable name of the pool (`films/launch.mp4`)
 * points at a sequence of contents, one per publish under it. The first
 * token to publish a name owns it. A generation's number is one more than
 * the newest one's, decided in the same transaction that appends it, so two
 * publishes under one name (even on two managers) never share a number.
 */
import { ForbiddenError } from '../../core/errors.ts'
import type { SqlEngine } from './engine.ts'

export interface NameRow {
  name: string
  /** id of the token that first published under it */
  owner: string
  /** ms since the epoch */
  createdAt: number
  /** generations kept (the newest ones); null: all */
  keep: number | null
}

export interface GenerationRow {
  name: string
  seq: number
  content: string
  /** ms since the epoch */
  createdAt: number
  size: number
  /** bytes this generation sent that the name did not already hold (its size, for a generation published whole) */
  added: number
}

export interface AppendRequest {
  name: string
  /** the publishing token's id: the owner of a new name */
  by: string
  /** whether `by` may add to a name owned by `owner` (the owner itself, or an admin) */
  mayAppend: (owner: string) => boolean
  content: string
  size: number
  /** bytes sent that the name did not hold (default: size) */
  added?: number
  /** sets how many generations the name keeps from now on; absent: as before */
  keep?: number
  /** ms since the epoch */
  now: number
}

export interface Appended {
  seq: number
  /** generations beyond the name's `keep`, oldest first: their contents are to be deleted, then their rows dropped */
  beyondKeep: GenerationRow[]
}

interface RawName { name: string, owner: string, created_at: number, keep: number | null }
interface RawGeneration { name: string, seq: number, content: string, created_at: number, size: number, added: number | null }

function nameRow (r: RawName): NameRow {
  return { name: r.name, owner: r.owner, createdAt: Number(r.created_at), keep: r.keep == null ? null : Number(r.keep) }
}

function generationRow (r: RawGeneration): GenerationRow {
  return { name: r.name, seq: Number(r.seq), content: r.content, createdAt: Number(r.created_at), size: Number(r.size), added: Number(r.added ?? r.size) }
}

export class NameStore {
  private readonly db: SqlEngine
  private readonly s

  constructor (db: SqlEngine) {
    this.db = db
    const generationColumns = 'name, seq, content, created_at, size, added'
    this.s = {
      get: db.prepare('SELECT name, owner, created_at, keep FROM names WHERE name = ?'),
      insert: db.prepare('INSERT INTO names (name, owner, created_at, keep) VALUES (?, ?, ?, ?)'),
      setKeep: db.prepare('UPDATE names SET keep = ? WHERE name = ?'),
      newest: db.prepare('SELECT max(seq) AS seq FROM generations WHERE name = ?'),
      add: db.prepare(`INSERT INTO generations (${generationColumns}) VALUES (?, ?, ?, ?, ?, ?)`),
      latest: db.prepare(`SELECT ${generationColumns} FROM generations WHERE name = ? ORDER BY seq DESC LIMIT 1`),
      one: db.prepare(`SELECT ${generationColumns} FROM generations WHERE name = ? AND seq = ?`),
      list: db.prepare(`SELECT ${generationColumns} FROM generations WHERE name = ? ORDER BY seq`),
      olderThan: db.prepare(`SELECT ${generationColumns} FROM generations WHERE name = ? AND seq <= ? ORDER BY seq`),
      drop: db.prepare('DELETE FROM generations WHERE name = ? AND seq = ?'),
      namesOf: db.prepare('SELECT DISTINCT name FROM generations WHERE content = ?')
    }
  }

  async get (name: string): Promise<NameRow | undefined> {
    const r = await this.s.get.get(name) as RawName | undefined
    return r == null ? undefined : nameRow(r)
  }

  /**
   * Appends a generation in one transaction: claims the name when new,
   * refuses (ForbiddenError) a publisher that does not own it, numbers the
   * generation and says which ones fall beyond `keep`.
   */
  async append (a: AppendRequest): Promise<Appended> {
    return await this.db.transaction(async () => {
      const found = await this.get(a.name)
      if (found == null) await this.s.insert.run(a.name, a.by, a.now, a.keep ?? null)
      else if (!a.mayAppend(found.owner)) throw new ForbiddenError(`the name ${a.name} belongs to another publisher`)
      else if (a.keep != null && a.keep !== found.keep) await this.s.setKeep.run(a.keep, a.name)
      const newest = await this.s.newest.get(a.name) as { seq: number | null } | undefined
      const seq = Number(newest?.seq ?? 0) + 1
      await this.s.add.run(a.name, seq, a.content, a.now, a.size, a.added ?? a.size)
      const keep = a.keep ?? found?.keep ?? null
      const beyondKeep = keep == null ? [] : await this.beyond(a.name, seq - keep)
      return { seq, beyondKeep }
    })
  }

  /** The newest generation of a name. */
  /** The names a content is a generation of (a name capability opens it through them). */
  async namesOf (content: string): Promise<string[]> {
    return (await this.s.namesOf.all(content) as Array<{ name: string }>).map(r => r.name)
  }

  async latest (name: string): Promise<GenerationRow | undefined> {
    const r = await this.s.latest.get(name) as RawGeneration | undefined
    return r == null ? undefined : generationRow(r)
  }

  async generation (name: string, seq: number): Promise<GenerationRow | undefined> {
    const r = await this.s.one.get(name, seq) as RawGeneration | undefined
    return r == null ? undefined : generationRow(r)
  }

  /** Every generation still recorded, oldest first. */
  async generations (name: string): Promise<GenerationRow[]> {
    return (await this.s.list.all(name) as RawGeneration[]).map(generationRow)
  }

  /** Forgets a generation whose content was deleted because of `keep`. */
  async drop (name: string, seq: number): Promise<void> {
    await this.s.drop.run(name, seq)
  }

  private async beyond (name: string, lastDropped: number): Promise<GenerationRow[]> {
    if (lastDropped < 1) return []
    return (await this.s.olderThan.all(name, lastDropped) as RawGeneration[]).map(generationRow)
  }
}
