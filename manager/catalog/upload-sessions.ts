/**
 * Upload sessions: differential uploads in progress. A session is the plan
 * of an upload (its chunks' tags and sizes, and what the publish asked for)
 * beside the pending content row its copies are recorded under. It lives in
 * the catalog, so any manager of the pool may take its chunks, and it
 * survives its client and its manager: running the same publish again
 * resumes it. Only idleness ends an unfinished one (`expired`).
 */
import type { SqlEngine } from './engine.ts'

/** What the publisher announced, kept until the commit. */
export interface UploadPlan {
  /** one per chunk, in file order: HMAC tags of the plaintext hashes (core/chunk-keys.ts) */
  tags: string[]
  /** plaintext bytes of each chunk */
  sizes: number[]
  /** the name shown to viewers */
  file: string
  type: string
  replicas: number
  private: boolean
  keep?: number
  ttlSeconds?: number
}

export interface SessionRow {
  upload: string
  name: string
  /** the token that opened it */
  owner: string
  plan: UploadPlan
  /** chunk bytes received and stored so far (all plans of the session) */
  uploaded: number
  /** ms since the epoch */
  touchedAt: number
}

interface RawSession { upload: string, name: string, owner: string, plan: string, uploaded: number, touched_at: number }

function sessionRow (r: RawSession): SessionRow {
  return { upload: r.upload, name: r.name, owner: r.owner, plan: JSON.parse(r.plan) as UploadPlan, uploaded: Number(r.uploaded), touchedAt: Number(r.touched_at) }
}

export class UploadSessionStore {
  private readonly s

  constructor (db: SqlEngine) {
    const columns = 'upload, name, owner, plan, uploaded, touched_at'
    this.s = {
      insert: db.prepare(`INSERT INTO upload_sessions (${columns}) VALUES (?, ?, ?, ?, 0, ?)`),
      get: db.prepare(`SELECT ${columns} FROM upload_sessions WHERE upload = ?`),
      find: db.prepare(`SELECT ${columns} FROM upload_sessions WHERE name = ? AND owner = ? ORDER BY touched_at DESC LIMIT 1`),
      setPlan: db.prepare('UPDATE upload_sessions SET plan = ?, touched_at = ? WHERE upload = ?'),
      stored: db.prepare('UPDATE upload_sessions SET uploaded = uploaded + ?, touched_at = ? WHERE upload = ?'),
      drop: db.prepare('DELETE FROM upload_sessions WHERE upload = ?'),
      expired: db.prepare('SELECT upload FROM upload_sessions WHERE touched_at < ?')
    }
  }

  /** Records a new session for a pending upload row made in the same transaction. */
  async create (upload: string, name: string, owner: string, plan: UploadPlan, now: number): Promise<void> {
    await this.s.insert.run(upload, name, owner, JSON.stringify(plan), now)
  }

  async get (upload: string): Promise<SessionRow | undefined> {
    const r = await this.s.get.get(upload) as RawSession | undefined
    return r == null ? undefined : sessionRow(r)
  }

  /** The unfinished session `owner` has for `name`, to resume. */
  async find (name: string, owner: string): Promise<SessionRow | undefined> {
    const r = await this.s.find.get(name, owner) as RawSession | undefined
    return r == null ? undefined : sessionRow(r)
  }

  /** A resumed session takes the new plan (a file that grew, or changed). */
  async replacePlan (upload: string, plan: UploadPlan, now: number): Promise<void> {
    await this.s.setPlan.run(JSON.stringify(plan), now, upload)
  }

  /** A chunk of `bytes` was stored for the session. */
  async addStored (upload: string, bytes: number, now: number): Promise<void> {
    await this.s.stored.run(bytes, now, upload)
  }

  /** The session ended (committed); a discarded upload's row goes with its content row. */
  async drop (upload: string): Promise<void> {
    await this.s.drop.run(upload)
  }

  /** Uploads of sessions untouched since `before` (ms since the epoch). */
  async expired (before: number): Promise<string[]> {
    return (await this.s.expired.all(before) as Array<{ upload: string }>).map(r => r.upload)
  }
}
