/**
 * Runs a catalog test once per engine: SQLite (a file in a temporary
 * directory) and PostgreSQL (a fresh database in a throwaway cluster,
 * test/support/postgres.ts, started once per test file on first use).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'uvu'
import type { SqlEngine } from '../../manager/catalog/engine.ts'
import { openEngine, type CatalogLocation } from '../../manager/catalog/open.ts'
import { startPostgres, type TestPostgres } from './postgres.ts'

export type EngineName = 'sqlite' | 'postgres'
export const ENGINES: readonly EngineName[] = ['sqlite', 'postgres']

let cluster: Promise<TestPostgres> | undefined
const dirs: string[] = []
const engines = new Set<SqlEngine>()
const hooked = new WeakSet<object>()

/** The shared cluster of this test process (started on first use, stopped by `closeEngines`). */
export async function testCluster (): Promise<TestPostgres> {
  cluster ??= startPostgres()
  return await cluster
}

/** A new, empty place for a catalog on `engine`. */
export async function freshLocation (engine: EngineName): Promise<CatalogLocation> {
  if (engine === 'postgres') return { postgresUrl: await (await testCluster()).createDatabase() }
  const dir = await mkdtemp(join(tmpdir(), 'cdn-catalog-'))
  dirs.push(dir)
  return { sqlite: join(dir, 'catalog.db') }
}

/** Opens an engine on `where`; closed by `closeEngines` unless the test closed it. */
export async function openTracked (where: CatalogLocation): Promise<SqlEngine> {
  const db = await openEngine(where)
  engines.add(db)
  return db
}

export async function closeEngines (): Promise<void> {
  for (const db of engines) await db.close()
  engines.clear()
  if (cluster != null) await (await cluster).stop()
  cluster = undefined
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true })
}

/**
 * Registers `name` once per engine. `open` opens an engine on the test's own
 * fresh catalog; calling it again opens the same catalog anew (a restart).
 */
export function eachEngine (test: Test, name: string, fn: (open: () => Promise<SqlEngine>, engine: EngineName) => Promise<void>): void {
  if (!hooked.has(test)) {
    hooked.add(test)
    test.after(closeEngines)
  }
  for (const engine of ENGINES) {
    test(`${name} [${engine}]`, async () => {
      const where = await freshLocation(engine)
      await fn(async () => await openTracked(where), engine)
    })
  }
}
