/**
 * What a removed node leaves in its data directory: a marker that keeps it
 * from ever starting (serving, announcing, rejoining) from there again, and,
 * unless the operator asked to keep them, no blobs.
 */
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CdnError } from '../core/errors.ts'
import { ERR_REMOVED } from '../core/wire.ts'

const MARKER = 'removed.json'

/** Refuses to start from a data directory whose node was removed from the pool. */
export async function checkNotRemoved (dataDir: string): Promise<void> {
  let text: string
  try {
    text = await readFile(join(dataDir, MARKER), 'utf8')
  } catch (err: any) {
    if (err?.code === 'ENOENT') return
    throw err
  }
  let at = 'earlier'
  try {
    at = `at ${String(JSON.parse(text).at)}`
  } catch {
    // A damaged marker still marks the directory.
  }
  throw new CdnError(`the node of ${dataDir} was removed from the pool ${at}; to add this server again, start it with a fresh --data directory`, ERR_REMOVED, 403)
}

/** Marks the directory removed, then deletes the blobs unless `keep`; returns what became of them, for the node's last line. */
export async function leaveDataDir (dataDir: string, manager: string, keep: boolean): Promise<string> {
  await writeFile(join(dataDir, MARKER), `${JSON.stringify({ at: new Date().toISOString(), manager })}\n`)
  const blobs = join(dataDir, 'blobs')
  if (keep) return `blobs kept in ${blobs} (--keep-data)`
  await rm(blobs, { recursive: true, force: true })
  return 'its blobs were deleted'
}
