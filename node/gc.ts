/**
 * The chore that deletes orphans: blobs no held manifest refers to, once they
 * are older than a grace period. They are what a publish that never completed
 * leaves behind (chunks placed, manifest never sent). The grace period covers
 * publishes still in progress, whose manifest has not arrived yet.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { describeError } from '../core/errors.ts'
import type { Logger } from '../core/log.ts'
import type { BlobStore } from './blob-store.ts'
import type { ContentIndex } from './content-index.ts'

// Longer than the manager's upload deadline (6 h), so no chunk of an upload still in progress is collected.
export const DEFAULT_GC_GRACE_MS = 24 * 3_600_000

export interface GarbageCollectorComponents {
  store: Pick<BlobStore, 'list' | 'delete'>
  index: Pick<ContentIndex, 'isReferenced'>
  logger: Logger
  /** ms since epoch (default Date.now; blob mtimes are wall-clock) */
  now?: () => number
}

export interface GarbageCollectorInit {
  /** age before an unreferenced blob may go (default 6 h) */
  graceMs?: number
  /** time between sweeps (default a quarter of the grace period, between 1 s and 1 h) */
  intervalMs?: number
}

export class GarbageCollector {
  private readonly c: GarbageCollectorComponents
  private readonly log: Logger
  private readonly now: () => number
  readonly graceMs: number
  readonly intervalMs: number
  private controller?: AbortController
  private loop?: Promise<void>

  constructor (components: GarbageCollectorComponents, init: GarbageCollectorInit = {}) {
    this.c = components
    this.log = components.logger
    this.now = components.now ?? Date.now
    this.graceMs = init.graceMs ?? DEFAULT_GC_GRACE_MS
    this.intervalMs = init.intervalMs ?? Math.min(3_600_000, Math.max(1000, this.graceMs / 4))
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

  start (): void {
    if (this.loop != null) return
    this.controller = new AbortController()
    const signal = this.controller.signal
    this.loop = (async () => {
      while (!signal.aborted) {
        try {
          await sleep(this.intervalMs, undefined, { signal })
          await this.sweep(signal)
        } catch (err) {
          if (signal.aborted) return
          this.log.error({ err: describeError(err) }, 'garbage collection failed')
        }
      }
    })()
  }

  async stop (): Promise<void> {
    this.controller?.abort(new Error('node stopping'))
    await this.loop
    this.loop = undefined
  }
}
