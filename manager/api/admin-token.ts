/**
 * The first admin token. A new pool has no token at all, so its first start
 * makes an admin token and writes it to `<dataDir>/admin.token`, readable by
 * the manager's user only; the log says where it is, never what it is.
 */
import { writeSecretFile } from '../../core/secret-file.ts'
import type { Logger } from '../../core/log.ts'
import type { Catalog } from '../catalog/catalog.ts'
import { newToken, type TokenStore } from '../catalog/tokens.ts'

export const ADMIN_TOKEN_FILE = 'admin.token'

/**
 * Makes the first admin token unless the pool ever had one. The file comes
 * first: a crash between the two steps leaves a file nobody trusts yet (the
 * next start makes another), never a token nobody can read.
 */
export async function ensureAdminToken (c: { tokens: TokenStore, catalog: Pick<Catalog, 'sync'>, logger: Logger }, path: string): Promise<void> {
  if (await c.tokens.hasAdmin()) return
  const token = newToken()
  await writeSecretFile(path, `${token}\n`)
  const info = await c.tokens.register('admin', token, 'first admin')
  await c.catalog.sync()

  c.logger.info({ path, id: info.id }, 'first start: an admin token was written to this file (readable by this user only)')
}
