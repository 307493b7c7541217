import { randomUUID } from 'node:crypto'
import { open, rename, rm } from 'node:fs/promises'

/**
 * Writes a secret to `path` with mode 0600, synced, atomically: it is whole on
 * disk before anything that depends on it is recorded, and readable by this
 * user only.
 */
export async function writeSecretFile (path: string, contents: string | Uint8Array): Promise<void> {
  const tmp = `${path}.${randomUUID()}.tmp`
  try {
    const fh = await open(tmp, 'wx', 0o600)
    try {
      await fh.writeFile(contents)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}
