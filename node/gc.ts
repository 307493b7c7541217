/**
 * The chore that deletes orphans: blobs no held manifest refers to, once they
 * are older than a grace period. They are what a publish that never completed
 * leaves behind (chunks placed, manifest never sent). The grace period covers
 * publishes still in progress, whose manifest has not arrived yet.
 */
import { Chore } from '../core/chore.ts'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import type { BlobStore } from './blob-store.ts'
import type { ContentIndex } from './content-index.ts'
import { NODE_DEFAULTS } from './defaults.ts'

export interface GarbageCollectorComponents {
  store: Pick<BlobStore, 'list' | 'delete'>
  index: Pick<ContentIndex, 'isReferenced'>
  logger: Logger
  /** ms since epoch (default Date.now; blob mtimes are wall-clock) */
  now?: () => number
}

export interface GarbageCollectorInit {
  /** age before an unreferenced blob may go (default NODE_DEFAULTS.gcGraceMs) */
  graceMs?: number
  /** time between sweeps (default a quarter of the grace period, between 1 s and 1 h) */
  intervalMs?: number
}

export class GarbageCollector {
  private readonly c: GarbageCollectorComponents
  private readonly log: Logger
  private readonly now: () => number
  private readonly chore: Chore
  readonly graceMs: number
  readonly intervalMs: number

  constructor (components: GarbageCollectorComponents, init: GarbageCollectorInit = {}) {
    this.c = components
    this.log = components.logger
    this.now = components.now ?? Date.now
    this.graceMs = init.graceMs ?? NODE_DEFAULTS.gcGraceMs
    this.intervalMs = init.intervalMs ?? Math.min(3_600_000, Math.max(1000, this.graceMs / 4))
    this.chore = new Chore('garbage collection', this.intervalMs, async (signal) => { await this.sweep(signal) }, this.log)
  }

  /** One pass; returns the ids deleted. */
  async sweep (signal?: AbortSignal): Promise<string[]> {
    const cutoff = this.now() - this.graceMs
    const deleted: string[] = []
    for (const blob of this.c.store.list()) {
      signal?.throwIfAborted()
      if (blob.mtimeMs > cutoff || this.c.index.isReferenced(blob.cid)) continue
      try {
        if (await this.c.store.delete(blob.cid, { olderThan: cutoff })) deleted.push(blob.cid.toString())
      } catch (err) {
        this.log.error({ blob: blob.cid.toString(), err: describeError(err) }, 'could not delete orphan blob')
      }
    }
    if (deleted.length > 0) this.log.info({ deleted: deleted.length }, 'deleted orphan blobs')
    return deleted
  }

  start (): void { this.chore.start() }

  async stop (): Promise<void> { await this.chore.close() }
}
