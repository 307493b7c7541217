import { randomUUID } from 'node:crypto'
import { rename, rm, writeFile } from 'node:fs/promises'

/**
 * Writes `bytes` to a temporary name beside `path` and renames it into place,
 * so readers see the whole file or none of it. No fsync: for files a crash may
 * lose (staging, caches); the node's blob store syncs on its own.
 */
export async function replaceFile (path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.${randomUUID()}.tmp`
  try {
    await writeFile(tmp, bytes)
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}
