/**
 * Content keys are stored sealed under the pool's master key, so a copy of
 * the database alone (a backup, a stolen disk, a PostgreSQL dump) opens no
 * content. The master key lives in a file beside the manager
 * (`<dataDir>/master.key`, or `--master-key-file` for managers that share one
 * pool), never in the database.
 *
 * A sealed key is AES-256-GCM: a random 12-byte nonce, the 32 encrypted key
 * bytes and the 16-byte tag, with the content id as associated data, so a
 * sealed key moved to another content's row does not open.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { KEY_BYTES } from '../../core/chunk-crypto.ts'
import { CdnError } from '../../core/errors.ts'
import { writeSecretFile } from '../../core/secret-file.ts'

/** The master key's file name in a manager's data directory, unless `--master-key-file` names another. */
export const MASTER_KEY_FILE = 'master.key'

const NONCE_BYTES = 12
const TAG_BYTES = 16
/** What a sealed key occupies; a row of KEY_BYTES is a key from before sealing. */
export const SEALED_KEY_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES

/** The master key does not open the pool's content keys, or cannot be read. */
export class MasterKeyError extends CdnError {
  constructor (message: string, options?: ErrorOptions) { super(message, 'ERR_MASTER_KEY', 500, options) }
}

export class KeySealer {
  private readonly master: Uint8Array

  constructor (master: Uint8Array) {
    if (master.length !== KEY_BYTES) throw new MasterKeyError(`a master key is ${KEY_BYTES} bytes, got ${master.length}`)
    this.master = master
  }

  seal (contentId: string, key: Uint8Array): Uint8Array {
    const nonce = randomBytes(NONCE_BYTES)
    const cipher = createCipheriv('aes-256-gcm', this.master, nonce)
    cipher.setAAD(Buffer.from(contentId, 'utf8'))
    const body = Buffer.concat([cipher.update(key), cipher.final()])
    return Buffer.concat([nonce, body, cipher.getAuthTag()])
  }

  open (contentId: string, sealed: Uint8Array): Uint8Array {
    if (sealed.length !== SEALED_KEY_BYTES) throw new MasterKeyError(`the stored key of ${contentId} is not a sealed key (${sealed.length} bytes)`)
    const decipher = createDecipheriv('aes-256-gcm', this.master, sealed.subarray(0, NONCE_BYTES))
    decipher.setAAD(Buffer.from(contentId, 'utf8'))
    decipher.setAuthTag(sealed.subarray(NONCE_BYTES + KEY_BYTES))
    try {
      return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, NONCE_BYTES + KEY_BYTES)), decipher.final()])
    } catch (err) {
      throw new MasterKeyError(`the key of ${contentId} does not open with this master key: is it the pool's (--master-key-file)?`, { cause: err })
    }
  }
}

/**
 * Reads the master key file, or makes one (mode 0600) when `create` and there
 * is none: the first start of a pool. A file of the wrong size is refused.
 */
export async function loadMasterKey (path: string, create: boolean): Promise<{ key: Uint8Array, created: boolean }> {
  let text: string
  try {
    text = (await readFile(path, 'utf8')).trim()
  } catch (err: any) {
    if (err?.code !== 'ENOENT') throw new MasterKeyError(`cannot read the master key file ${path}: ${String(err?.message ?? err)}`, { cause: err })
    if (!create) throw new MasterKeyError(`no master key file at ${path}`, { cause: err })
    const key = randomBytes(KEY_BYTES)
    await writeSecretFile(path, `${key.toString('base64url')}\n`)
    return { key, created: true }
  }
  const key = Buffer.from(text, 'base64url')
  if (key.length !== KEY_BYTES) throw new MasterKeyError(`the master key file ${path} does not hold a ${KEY_BYTES}-byte key (base64url)`)
  return { key, created: false }
}
