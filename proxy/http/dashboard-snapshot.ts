/**
 * What the dashboard draws, as one JSON object: embedded in the page when it
 * is served (so it shows the state at once), then pushed every second over
 * server-sent events.
 */
import type { CacheStats } from '../state/chunk-cache.ts'
import type { BudgetStats } from '../fetch/memory-budget.ts'
import type { FetchEngine } from '../fetch/fetch-engine.ts'
import type { DownloadTracker, DownloadView } from './download-tracker.ts'
import { nameSources, type NamedSource } from './source-health.ts'
import type { SpeedSeries } from './speed-history.ts'

export interface DashboardSnapshot {
  /** ms since the epoch */
  at: number
  downloads: { active: DownloadView[], recent: DownloadView[] }
  sources: NamedSource[]
  speed: SpeedSeries
  cache?: CacheStats
  memory: BudgetStats
}

export function dashboardSnapshot (engine: Pick<FetchEngine, 'snapshot'>, tracker: Pick<DownloadTracker, 'snapshot' | 'history'>, now = Date.now()): DashboardSnapshot {
  const e = engine.snapshot()
  return {
    at: now,
    downloads: tracker.snapshot(),
    sources: nameSources(e.sources),
    speed: tracker.history(),
    ...(e.cache == null ? {} : { cache: e.cache }),
    memory: e.memory
  }
}
